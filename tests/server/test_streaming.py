"""stream=true: SSE chat.completion.chunk events the openai SDK consumes, with include_usage."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from pytest_pai_judge.server.tokens import count_tokens

QUESTION = "What do you think is the effect of social media on relationships?"
MESSAGES = [{"role": "user", "content": [{"mode": "single", "type": "json", "json": {
    "question": QUESTION, "answer": "Social media keeps people in contact but can also lead to alienation."}}]}]


def test_sdk_stream_with_usage_matches_plain_reply(judge_server):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    plain = client.chat.completions.create(model="pai-judge", messages=MESSAGES)
    chunks = list(client.chat.completions.create(model="pai-judge", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump(exclude_none=True) == plain.usage.model_dump(exclude_none=True)
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)


def test_sdk_stream_without_usage(judge_server):
    client = openai.OpenAI(api_key="unused", base_url=judge_server.url)
    chunks = list(client.chat.completions.create(model="pai-judge", messages=MESSAGES, stream=True))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


def test_raw_sse_framing(judge_server):
    body = {"model": "pai-judge", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True},
            "n": 2, "max_tokens": 20}
    with httpx.stream("POST", f"{judge_server.url}/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = [block for block in raw.split("\n\n") if block]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    by_index: dict[int, str] = {}
    finish: dict[int, str] = {}
    for p in payloads[:-1]:
        (choice,) = p["choices"]
        by_index[choice["index"]] = by_index.get(choice["index"], "") + (choice["delta"].get("content") or "")
        if choice["finish_reason"]:
            finish[choice["index"]] = choice["finish_reason"]
    assert set(by_index) == {0, 1} and finish == {0: "length", 1: "length"}
    assert all(count_tokens(t) == 20 for t in by_index.values())
    usage = payloads[-1]["usage"]
    assert payloads[-1]["choices"] == [] and usage["completion_tokens"] == 40
    assert usage["total_tokens"] == usage["prompt_tokens"] + 40


def test_stream_strict_validation_openai_dialect(make_judge_server):
    server = make_judge_server(status_dialect="openai")
    client = openai.OpenAI(api_key="unused", base_url=server.url, _strict_response_validation=True)
    chunks = list(client.chat.completions.create(model="pai-judge", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].usage.total_tokens > 0


def test_stream_error_before_first_byte(make_judge_server):
    server = make_judge_server(faults=["social media=500"])
    client = openai.OpenAI(api_key="unused", base_url=server.url, max_retries=0)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="pai-judge", messages=MESSAGES, stream=True)
    assert info.value.code == "ModelServiceFailed"
    assert info.value.body["message"].startswith("Request_judge_model_with_stream, load error, request_id: ")


def test_async_sdk_stream(judge_server):
    async def consume() -> str:
        client = openai.AsyncOpenAI(api_key="unused", base_url=judge_server.url)
        stream = await client.chat.completions.create(model="pai-judge", messages=MESSAGES, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
        await client.close()
        return text

    assert asyncio.run(consume()).startswith("I think the overall score of the answer is [[")
