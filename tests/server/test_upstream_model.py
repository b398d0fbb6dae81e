"""The openai engine against a stub OpenAI-compatible model server: streaming pass-through, the upstream's
context length (``--context-limit auto``) and token counts, and the reply rules a real model needs.

The stub (:class:`fake_model.FakeModel`) is a real HTTP server on a 127.0.0.1 free port; so is the judge
server in front of it.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import textwrap
import time

import httpx
import openai
import pytest
from fake_model import FakeModel  # tests/server is on sys.path

from pytest_pai_judge.server import upstream_info
from pytest_pai_judge.verdict import parse_reply

pytest_plugins = ["pytester"]

SINGLE = [{"role": "user", "content": [{"mode": "single", "type": "json", "json": {
    "question": "What is the capital of France?", "answer": "Paris is the capital of France."}}]}]
SLOW_REPLY = ("I think the overall score of the answer is [[4]] due to the following reasons: 1. Accuracy: "
              "correct [[4]] 2. Clarity: clear [[4]]")


def front_of(make_judge_server, model: FakeModel, **overrides):
    return make_judge_server(engine="openai", upstream_base_url=model.url, upstream_model="fake",
                             upstream_max_retries=0, **overrides)


# --------------------------------------------------------------------------- streaming


def test_stream_passes_upstream_chunks_through_as_they_come(make_judge_server):
    """The first chunk reaches the client while the model is still generating, not after the whole reply."""
    with FakeModel(generation_s=0, reply=SLOW_REPLY, chunk_delay_s=0.15) as model:
        front = front_of(make_judge_server, model)
        client = openai.OpenAI(api_key="unused", base_url=front.url, max_retries=0)
        received: list[tuple[float, str]] = []
        usage = None
        for chunk in client.chat.completions.create(model="pai-judge", messages=SINGLE, stream=True,
                                                    stream_options={"include_usage": True}):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append((time.monotonic(), chunk.choices[0].delta.content))
            usage = chunk.usage or usage
        assert "".join(text for _, text in received) == SLOW_REPLY
        assert len(model.chunk_times) == len(SLOW_REPLY.split(" "))
        assert received[0][0] < model.chunk_times[-1] - 0.5  # seconds before the model's last chunk was sent
        assert model.bodies[-1]["stream"] is True and model.bodies[-1]["stream_options"] == {"include_usage": True}
        assert usage is not None and usage.total_tokens == 33  # the model's own usage, passed through
        assert parse_reply("".join(t for _, t in received), "single").score == 4


def test_stream_pass_through_keeps_the_sse_framing_and_choices(make_judge_server):
    with FakeModel(generation_s=0, reply="overall score [[5]]") as model:
        front = front_of(make_judge_server, model, status_dialect="openai")
        client = openai.OpenAI(api_key="unused", base_url=front.url, max_retries=0, _strict_response_validation=True)
        chunks = list(client.chat.completions.create(model="pai-judge", messages=SINGLE, stream=True, n=2))
        assert chunks[0].choices[0].delta.role == "assistant"
        texts = {i: "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == i)
                 for i in (0, 1)}
        assert texts == {0: "overall score [[5]]", 1: "overall score [[5]]"}
        assert sorted(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason) == \
            ["stop", "stop"]
        assert len({c.id for c in chunks}) == 1 and all(c.model == "pai-judge" for c in chunks)
        assert all(c.usage is None for c in chunks)  # not asked for


def test_stream_upstream_failure_before_the_first_chunk_is_the_spec_500(make_judge_server):
    with FakeModel(generation_s=0) as model:
        front = front_of(make_judge_server, model)
        client = openai.OpenAI(api_key="unused", base_url=front.url, max_retries=0)
        messages = [{"role": "user", "content": [{"mode": "single", "type": "json", "json": {
            "question": "FAIL500 please", "answer": "a"}}]}]
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="pai-judge", messages=messages, stream=True)
        assert info.value.code == "ModelServiceFailed"
        assert info.value.body["message"].startswith("Request_judge_model_with_stream, load error, request_id: ")


def test_stream_client_that_leaves_closes_the_upstream_stream(make_judge_server):
    with FakeModel(generation_s=0, reply=" ".join(["word"] * 60), chunk_delay_s=0.1) as model:
        front = front_of(make_judge_server, model)
        body = {"model": "pai-judge", "messages": SINGLE, "stream": True}
        with httpx.stream("POST", f"{front.url}/chat/completions", json=body, timeout=10) as response:
            for line in response.iter_lines():
                if line.startswith("data: {") and "word" in str(json.loads(line[6:])["choices"]):
                    break
        deadline = time.monotonic() + 5
        while front.stats["upstream_in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert front.stats["upstream_in_flight"] == 0  # the slot came back...
        time.sleep(0.5)
        assert len(model.chunk_times) < 30  # ...because the upstream stream was closed, long before its end


# --------------------------------------------------------------------------- context and token counts


@pytest.mark.parametrize("flavour", ["vllm", "llama.cpp", "ollama"])
def test_context_length_is_asked_from_the_upstream(flavour):
    with FakeModel(flavour=flavour, context=6144) as model:
        assert asyncio.run(upstream_info.context_length(model.url, "fake")) == 6144


@pytest.mark.parametrize("flavour", ["llama-cpp-python", None])
def test_context_length_unknown_is_a_clear_error(flavour):
    with FakeModel(flavour=flavour) as model, pytest.raises(upstream_info.UpstreamInfoError) as info:
        asyncio.run(upstream_info.context_length(model.url, "fake"))
    assert "does not tell the context length of model 'fake'" in str(info.value)
    assert "pass --context-limit TOKENS" in str(info.value)


def test_served_context_comes_from_the_upstream(make_judge_server):
    """``context_limit_auto``: the upstream's 300 tokens is what the server refuses beyond."""
    with FakeModel(generation_s=0, flavour="llama.cpp", context=300) as model:
        front = front_of(make_judge_server, model, context_limit_auto=True)
        client = openai.OpenAI(api_key="unused", base_url=front.url, max_retries=0)
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="pai-judge", messages=SINGLE, max_tokens=10)
        assert info.value.code == "ContextLengthExceeded"
        assert "maximum context length is 300 tokens" in info.value.message
        assert model.arrivals == 0  # refused before the model was asked to generate


def test_cli_context_limit_auto_refuses_to_start_when_the_upstream_cannot_tell():
    with FakeModel(flavour="llama-cpp-python") as model:
        proc = subprocess.run([sys.executable, "-m", "pytest_pai_judge.server", "--engine", "openai",
                               "--upstream-base-url", model.url, "--upstream-model", "fake", "--context-limit", "auto"],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "does not tell the context length" in proc.stderr and "--context-limit TOKENS" in proc.stderr


def test_cli_context_limit_auto_needs_the_openai_engine(capsys):
    from pytest_pai_judge.server.cli import main

    with pytest.raises(SystemExit):
        main(["--context-limit", "auto"])
    assert "needs --engine openai" in capsys.readouterr().err


@pytest.mark.parametrize("flavour", ["vllm", "llama.cpp", "llama-cpp-python"])
def test_prompt_tokens_are_counted_by_the_upstream(make_judge_server, flavour):
    with FakeModel(generation_s=0, flavour=flavour) as model:
        front = front_of(make_judge_server, model, models={"pai-judge": 400})
        client = openai.OpenAI(api_key="unused", base_url=front.url, max_retries=0)
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="pai-judge", messages=SINGLE, max_tokens=100)
        upstream_count = model.counted[-1]
        assert f"({upstream_count} in the messages" in info.value.message
        estimate = make_judge_server(engine="openai", upstream_base_url=model.url, upstream_model="fake",
                                     models={"pai-judge": 400}, upstream_token_count=False)
        with pytest.raises(openai.BadRequestError) as local:
            openai.OpenAI(api_key="unused", base_url=estimate.url, max_retries=0).chat.completions.create(
                model="pai-judge", messages=SINGLE, max_tokens=100)
        assert f"({upstream_count} in the messages" not in local.value.message  # the estimate differs


def test_upstream_without_a_tokenizer_falls_back_to_the_estimate(make_judge_server):
    with FakeModel(generation_s=0, flavour="ollama") as model:
        front = front_of(make_judge_server, model)
        client = openai.OpenAI(api_key="unused", base_url=front.url, max_retries=0)
        for _ in range(2):
            assert client.chat.completions.create(model="pai-judge", messages=SINGLE).choices[0].message.content
        assert model.counted == [] and model.arrivals == 2


# --------------------------------------------------------------------------- what a real model answers


def test_a_bare_number_from_the_model_is_read_on_the_custom_scale(make_judge_server, pytester):
    """The spec's custom sample, answered "4" (as small models do), passes through the plugin as a score."""
    with FakeModel(generation_s=0, reply="4") as model:
        front = front_of(make_judge_server, model)
        pytester.makepyfile(textwrap.dedent("""
            def test_custom(judge):
                verdict = judge.custom([{"role": "user", "content": "Please score the answer on a scale of 1 to 5: "
                                                                    "Question: q? Answer: a"}])
                assert verdict.score == 4
        """))
        pytester.runpytest("--judge-base-url", front.url, "-p", "no:cacheprovider").assert_outcomes(passed=1)


CONTRADICTING = ("I regard [[Answer 1 is better]]. The overall score of Answer 1 is [[4]] and the overall score of "
                 "Answer 2 is [[5]] for the following reasons:\n1. Accuracy: fine [[Rating for Answer 1: 4]] "
                 "[[Rating for Answer 2: 5]]")


def test_pairwise_contradiction_takes_the_verdict_words_and_the_report_shows_it(make_judge_server, pytester):
    """The rule: the winner words win; the record and the report carry the disagreement."""
    with FakeModel(generation_s=0, reply=CONTRADICTING) as model:
        front = front_of(make_judge_server, model)
        pytester.makepyfile(textwrap.dedent("""
            def test_pair(judge):
                comparison = judge.compare("q?", "answer a", "answer b", both_orders=False)
                assert comparison.winner == "1"
                assert "names answer 1 but the overall scores are 4 vs 5" in comparison.forward.contradiction
        """))
        result = pytester.runpytest("--judge-base-url", front.url, "-p", "no:cacheprovider",
                                    "--judge-report=report.csv", "--judge-cache=off")
        result.assert_outcomes(passed=1)
    import pandas as pd

    from pytest_pai_judge.report.table import read_report

    table = read_report(pytester.path / "report.csv")
    (note,) = table["contradiction"].tolist()
    assert not pd.isna(note) and re.search(r"names answer 1 but the overall scores are 4 vs 5", note)


def test_cli_flags_for_context_and_token_counts():
    from pytest_pai_judge.server.cli import build_parser, config_from_args

    base = ["--engine", "openai", "--upstream-base-url", "http://127.0.0.1:9/v1", "--upstream-model", "m"]
    auto = config_from_args(build_parser().parse_args([*base, "--context-limit", "auto", "--token-count", "estimate"]))
    assert auto.context_limit_auto and not auto.upstream_token_count
    fixed = config_from_args(build_parser().parse_args([*base, "--context-limit", "8192"]))
    assert not fixed.context_limit_auto and fixed.upstream_token_count
    assert set(fixed.models.values()) == {8192}
