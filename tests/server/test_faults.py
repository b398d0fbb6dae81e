"""Fault injection, latency that never blocks the loop, and the batch half's ``app.state.complete``."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import openai
import pytest

from pytest_pai_judge.server import Fault, ServerConfig, create_app
from pytest_pai_judge.server.app import BatchService


def judge(question: str, answer: str = "an answer") -> list[dict]:
    return [{"role": "user", "content": [{"mode": "single", "type": "json", "json": {
        "question": question, "answer": answer}}]}]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    from pytest_pai_judge.server import LocalJudgeServer

    with LocalJudgeServer(data_dir=tmp_path_factory.mktemp("faults"), fault_timeout_s=0.3,
                          faults=[Fault("RATE", "429"), Fault("BOOM", "500"), "HANG=timeout", "GARBLE=unreadable",
                                  "RISK=greennet"]) as server:
        yield server


def test_429_with_retry_after_ms_and_sdk_retries(faulty):
    response = httpx.post(f"{faulty.url}/chat/completions", json={"model": "pai-judge", "messages": judge("RATE")})
    assert response.status_code == 429
    assert response.headers["retry-after-ms"] == "50"
    assert response.json()["error"]["code"] == "RateLimited"
    before = faulty.stats["fault_429"]
    client = openai.OpenAI(api_key="unused", base_url=faulty.url, max_retries=2)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="pai-judge", messages=judge("RATE limited question"))
    assert info.value.code == "RateLimited"
    assert faulty.stats["fault_429"] - before == 3  # the SDK honoured retry-after-ms twice
    assert time.monotonic() - started < 2


def test_500_spec_message(faulty):
    response = httpx.post(f"{faulty.url}/chat/completions", json={"model": "pai-judge", "messages": judge("BOOM")})
    assert response.status_code == 500
    assert re.match(r"^Request_judge_model, load error, request_id: [0-9a-f-]{36}, errmsg: ",
                    response.json()["error"]["message"])


def test_timeout_holds_the_request(faulty):
    client = openai.OpenAI(api_key="unused", base_url=faulty.url, max_retries=0, timeout=0.1)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="pai-judge", messages=judge("HANG"))
    started = time.monotonic()
    response = httpx.post(f"{faulty.url}/chat/completions", json={"model": "pai-judge", "messages": judge("HANG")})
    assert time.monotonic() - started >= 0.25
    assert response.status_code == 500 and "timed out" in response.json()["error"]["message"]


def test_timeout_fault_released_at_shutdown(make_judge_server):
    server = make_judge_server(faults=["HANG=timeout"])  # default hold: 30 s
    client = openai.OpenAI(api_key="unused", base_url=server.url, max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="pai-judge", messages=judge("HANG"))
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3


def test_unreadable_has_no_score_marker(faulty):
    for question in ("GARBLE this", "GARBLE 这个问题"):
        response = httpx.post(f"{faulty.url}/chat/completions",
                              json={"model": "pai-judge", "messages": judge(question), "n": 2})
        assert response.status_code == 200
        for choice in response.json()["choices"]:
            text = choice["message"]["content"]
            assert text and "[[" not in text and not re.search(r"\d", text)


def test_greennet_fault(faulty):
    response = httpx.post(f"{faulty.url}/chat/completions", json={"model": "pai-judge", "messages": judge("RISK")})
    assert response.status_code == 403 and response.json()["error"]["code"] == "GreenNetFilter"


def test_fault_matches_last_user_message_of_custom_templates(faulty):
    response = httpx.post(f"{faulty.url}/chat/completions", json={"model": "pai-judge", "messages": [
        {"role": "system", "content": "judge fairly"}, {"role": "user", "content": "Question: BOOM?\nAnswer: a"}]})
    assert response.status_code == 500
    fine = httpx.post(f"{faulty.url}/chat/completions", json={"model": "pai-judge", "messages": [
        {"role": "system", "content": "BOOM in the system prompt only"}, {"role": "user", "content": "Question: q"}]})
    assert fine.status_code == 200


def test_latency_does_not_block_the_loop(make_judge_server):
    server = make_judge_server(latency_ms=200)

    async def fire() -> list[int]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100), timeout=30) as client:
            responses = await asyncio.gather(*(
                client.post(f"{server.url}/chat/completions",
                            json={"model": "pai-judge", "messages": judge(f"question {i}?")}) for i in range(64)))
        return [r.status_code for r in responses]

    started = time.monotonic()
    statuses = asyncio.run(fire())
    elapsed = time.monotonic() - started
    assert statuses == [200] * 64
    assert 0.2 <= elapsed < 2.0
    assert server.stats["judgements"] == 64


def run_in_server_loop(server, coro):
    return asyncio.run_coroutine_threadsafe(coro, server.app.state.loop).result(10)


def test_complete_for_batch_lines(make_judge_server):
    server = make_judge_server(faults=["BOOM=500", "RATE=429"])
    complete = server.app.state.complete
    status, body = run_in_server_loop(server, complete({"model": "pai-judge", "messages": judge("q?"),
                                                        "stream": True}))
    assert status == 200 and body["object"] == "chat.completion" and body["usage"]["total_tokens"] > 0
    assert body["choices"][0]["message"]["content"].startswith("I think the overall score")
    assert run_in_server_loop(server, complete({"model": "pai-judge", "messages": judge("BOOM")}))[0] == 500
    status, body = run_in_server_loop(server, complete({"model": "pai-judge", "messages": judge("RATE")}))
    assert status == 429 and body["error"]["code"] == "RateLimited"
    status, body = run_in_server_loop(server, complete({"model": "nope", "messages": judge("q")}))
    assert status == 404 and body["error"]["code"] == "ModelNotFound"
    assert run_in_server_loop(server, complete({"model": "pai-judge", "messages": "x"}))[0] == 400
    assert server.stats["chat_completions"] == 0 and server.stats["judgements"] == 1


def test_app_works_without_the_batch_module(monkeypatch):
    import pytest_pai_judge.server.app as app_module

    monkeypatch.setattr(app_module, "BatchService", None)
    app = create_app(ServerConfig())
    assert app.state.batch is None
    assert not any(getattr(r, "path", "").startswith("/v1/batches") for r in app.routes)


@pytest.mark.skipif(BatchService is None, reason="batch_api not present")
def test_batch_routes_mounted_behind_auth(make_judge_server):
    server = make_judge_server(token="tok")
    assert httpx.get(f"{server.url}/batches").status_code == 401
    assert httpx.get(f"{server.url}/batches", headers={"Authorization": "Bearer tok"}).status_code == 200


def test_non_loopback_without_token_warns(caplog):
    caplog.set_level("WARNING", logger="pytest_pai_judge.server")
    create_app(ServerConfig(host="0.0.0.0"))
    assert "without a token" in caplog.text
    caplog.clear()
    create_app(ServerConfig(host="0.0.0.0", token="x"))
    create_app(ServerConfig(host="::1"))
    assert "without a token" not in caplog.text
