"""Queue-aware calls to a slow upstream model (issue 11): the ``openai`` engine in front of a one-slot model.

Everything goes over real HTTP on 127.0.0.1: clients -> our server (``--engine openai``) -> a fake
third-party model (:mod:`fake_model`) that counts its open requests and generations and notices
when a client closes its connection. Shown: ``--upstream-concurrency`` bounds what reaches the
model, and the rest waits in a FIFO queue; a client that leaves takes its work with it (queued:
never sent; running: the upstream connection is closed); a timed-out call is not resent, a 500 is
resent exactly ``--upstream-retries`` times; and a deferred pytest run asks the model once per verdict.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fake_model import FakeModel  # tests/server is on sys.path

from pytest_pai_judge.server import LocalJudgeServer
from pytest_pai_judge.server.cli import build_parser, config_from_args, main
from pytest_pai_judge.server.upstream import UpstreamQueue


def body(question: str = "What is the capital of France?") -> dict[str, Any]:
    return {"model": "pai-judge", "messages": [{"role": "user", "content": [
        {"mode": "single", "type": "json", "json": {"question": question, "answer": "Paris."}}]}]}


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Poll ``condition`` until it holds; returns when it did (``time.monotonic()``), fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)
    return time.monotonic()


def http_stats(server: LocalJudgeServer) -> dict[str, int]:
    with urllib.request.urlopen(server.url.removesuffix("/v1") + "/_pai_judge/stats") as response:  # type: ignore[union-attr]
        return json.load(response)


@pytest.fixture
def model() -> Iterator[FakeModel]:
    with FakeModel(generation_s=0.2) as fake:
        yield fake


@pytest.fixture
def front(make_judge_server: Callable[..., LocalJudgeServer], model: FakeModel) -> Callable[..., LocalJudgeServer]:
    """``front(upstream_concurrency=1, ...)``: our server, openai engine, asking the fake model."""
    def make(**overrides: Any) -> LocalJudgeServer:
        return make_judge_server(engine="openai", upstream_base_url=model.url, upstream_model="fake", **overrides)
    return make


# --------------------------------------------------------------------------- the queue


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrent_requests_reach_the_upstream_at_most_limit_at_a_time(front, model, limit):
    server = front(upstream_concurrency=limit)
    statuses: list[int] = []

    def client(i: int) -> None:
        statuses.append(httpx.post(f"{server.url}/chat/completions", json=body(f"Question {i}?"), timeout=30).status_code)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * 8
    assert model.max_open == limit  # never more at the model; and the limit is used
    assert model.arrivals == model.generations_finished == 8
    stats = http_stats(server)
    assert stats["upstream_calls_started"] == stats["upstream_calls_finished"] == 8
    assert stats["upstream_calls_cancelled"] == 0 and stats["upstream_queued"] >= 8 - limit - 2
    assert stats["upstream_queue_peak"] >= 2 and stats["upstream_queue_depth"] == 0
    assert stats["upstream_in_flight"] == 0


def test_the_queue_is_first_come_first_served_and_a_waiter_can_leave() -> None:
    async def scenario() -> tuple[list[int], Counter[str]]:
        stats: Counter[str] = Counter()
        queue = UpstreamQueue(1, stats)
        order: list[int] = []
        release = asyncio.Event()

        async def call(i: int) -> None:
            async with queue.slot():
                order.append(i)
                if i == 0:
                    await release.wait()

        tasks = []
        for i in range(6):
            tasks.append(asyncio.ensure_future(call(i)))
            await asyncio.sleep(0)  # arrive in this order
        assert queue.depth == 5 and stats["upstream_queue_depth"] == 5
        tasks[3].cancel()  # its client left while it waited
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return order, stats

    order, stats = asyncio.run(scenario())
    assert order == [0, 1, 2, 4, 5]
    assert stats["upstream_cancelled_queued"] == 1 and stats["upstream_queue_depth"] == 0
    assert stats["upstream_in_flight"] == 0 and stats["upstream_queue_peak"] == 5


# --------------------------------------------------------------------------- a client that leaves


def test_a_client_that_leaves_while_queued_never_reaches_the_upstream(front, model):
    model.generation_s = 1.0
    server = front(upstream_concurrency=1)
    first: list[int] = []
    runner = threading.Thread(target=lambda: first.append(
        httpx.post(f"{server.url}/chat/completions", json=body("First?"), timeout=30).status_code))
    runner.start()
    wait_until(lambda: model.generations_started == 1)
    with pytest.raises(httpx.ReadTimeout):  # queued behind "First?", and gives up
        httpx.post(f"{server.url}/chat/completions", json=body("Impatient?"), timeout=0.3)
    wait_until(lambda: server.stats["upstream_cancelled_queued"] == 1, timeout=2)
    runner.join(10)
    assert first == [200]
    time.sleep(0.2)  # a queued call that was not dropped would be sent now
    assert model.arrivals == 1 and not any("Impatient" in q for q in model.questions)
    stats = http_stats(server)
    assert stats["client_disconnects"] == 1 and stats["upstream_calls_started"] == 1
    assert stats["upstream_queue_depth"] == 0


def test_a_client_that_leaves_while_running_closes_the_upstream_connection(front, model):
    model.generation_s = 10.0
    server = front(upstream_concurrency=1)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/chat/completions", json=body("Slow?"), timeout=0.5)
    gone = time.monotonic()
    seen = wait_until(lambda: len(model.disconnects) == 1, timeout=3)
    assert seen - gone < 1.0, f"upstream saw the disconnect {seen - gone:.3f} s after the client left"
    assert model.generations_finished == 0
    wait_until(lambda: server.stats["upstream_calls_cancelled"] == 1, timeout=2)
    stats = http_stats(server)
    assert stats["upstream_in_flight"] == 0 and stats["upstream_calls_finished"] == 0
    # the slot is free again: the next call is answered at once, not after the abandoned 10 s
    model.generation_s = 0.05
    assert httpx.post(f"{server.url}/chat/completions", json=body(), timeout=5).status_code == 200


def test_a_cancelled_batch_cancels_its_upstream_calls(front, model):
    model.generation_s = 10.0
    server = front(upstream_concurrency=2)
    line = json.dumps({"custom_id": "a", "body": body("Batch?")})
    lines = "\n".join(line.replace('"a"', f'"{i}"') for i in range(5)) + "\n"
    with httpx.Client(base_url=server.url, timeout=10) as http:
        up = http.post("/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", lines.encode())}).json()
        batch = http.post("/batches", json={"input_file_id": up["id"], "endpoint": "/v1/chat/completions",
                                            "completion_window": "24h"}).json()
        wait_until(lambda: model.open == 2 and server.stats["upstream_queue_depth"] == 3)
        assert http.post(f"/batches/{batch['id']}/cancel").status_code == 200
        gone = time.monotonic()
        seen = wait_until(lambda: len(model.disconnects) == 2, timeout=3)
        assert seen - gone < 1.0
        wait_until(lambda: http.get(f"/batches/{batch['id']}").json()["status"] == "Cancelled")
    assert model.arrivals == 2 and model.generations_finished == 0
    stats = http_stats(server)
    assert stats["upstream_calls_cancelled"] == 2 and stats["upstream_cancelled_queued"] == 3
    assert stats["upstream_queue_depth"] == 0 and stats["upstream_in_flight"] == 0


# --------------------------------------------------------------------------- timeouts and retries


def test_a_timed_out_upstream_call_is_not_resent_by_default(front, model):
    model.generation_s = 3.0
    server = front(upstream_timeout_s=0.4)  # upstream_max_retries stays at its default (2)
    assert server.config.upstream_max_retries == 2
    response = httpx.post(f"{server.url}/chat/completions", json=body("Slow?"), timeout=10)
    assert response.status_code == 500
    assert "upstream model timed out after 0.4 s (not resent" in response.json()["error"]["message"]
    assert model.arrivals == 1
    stats = http_stats(server)
    assert stats["upstream_timeouts"] == 1 and stats["upstream_retries"] == 0
    assert stats["upstream_calls_started"] == stats["upstream_calls_finished"] == 1


def test_timeouts_are_resent_only_when_asked(front, model):
    model.generation_s = 3.0
    server = front(upstream_timeout_s=0.3, upstream_max_retries=1, upstream_retry_timeouts=True)
    response = httpx.post(f"{server.url}/chat/completions", json=body("Slow?"), timeout=10)
    assert response.status_code == 500 and model.arrivals == 2
    assert server.stats["upstream_timeouts"] == 2 and server.stats["upstream_retries"] == 1


@pytest.mark.parametrize("retries", [0, 3])
def test_a_500_is_resent_exactly_upstream_retries_times(front, model, retries):
    server = front(upstream_max_retries=retries)
    response = httpx.post(f"{server.url}/chat/completions", json=body("FAIL500?"), timeout=10)
    assert response.status_code == 500 and "upstream model answered 500" in response.json()["error"]["message"]
    assert model.arrivals == 1 + retries
    stats = http_stats(server)
    assert stats["upstream_retries"] == retries and stats["upstream_calls_failed"] == 1 + retries


def test_an_unreachable_upstream_is_resent(make_judge_server):
    with FakeModel() as gone:
        dead_url = gone.url
    server = make_judge_server(engine="openai", upstream_base_url=dead_url, upstream_model="m",
                               upstream_max_retries=1)
    response = httpx.post(f"{server.url}/chat/completions", json=body(), timeout=10)
    assert response.status_code == 500 and "upstream model unreachable" in response.json()["error"]["message"]
    assert server.stats["upstream_calls_started"] == 2 and server.stats["upstream_retries"] == 1


# --------------------------------------------------------------------------- command line


def test_upstream_options_on_the_command_line():
    config = config_from_args(build_parser().parse_args([
        "--upstream-concurrency", "4", "--upstream-timeout", "30.5", "--upstream-retries", "0",
        "--upstream-retry-timeouts"]))
    assert (config.upstream_concurrency, config.upstream_timeout_s, config.upstream_max_retries,
            config.upstream_retry_timeouts) == (4, 30.5, 0, True)
    defaults = config_from_args(build_parser().parse_args([]))
    assert (defaults.upstream_concurrency, defaults.upstream_timeout_s, defaults.upstream_max_retries,
            defaults.upstream_retry_timeouts) == (1, 120.0, 2, False)


@pytest.mark.parametrize("argv,message", [
    (["--upstream-concurrency", "0"], ">= 1"),
    (["--upstream-concurrency", "many"], "whole number"),
    (["--upstream-timeout", "0"], "positive number of seconds"),
    (["--upstream-timeout", "inf"], "positive number of seconds"),
    (["--upstream-retries", "-1"], ">= 0"),
])
def test_bad_upstream_options_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


# --------------------------------------------------------------------------- the plugin, end to end


DEFERRED_SUITE = '''
import pytest
from pytest_pai_judge import assert_judge_score


@pytest.mark.parametrize("i", range(6))
def test_judged(i):
    assert_judge_score(f"What is the capital of France? ({i})", "Paris is the capital of France.", min=4)
'''


def test_a_deferred_run_asks_a_one_slot_model_once_per_verdict(pytester, front, model):
    model.generation_s = 0.3
    server = front(upstream_concurrency=1)
    pytester.makepyfile(test_slow_judge=DEFERRED_SUITE)
    started = time.monotonic()
    result = pytester.runpytest("--judge-base-url", server.url, "--judge-mode=deferred", "--judge-cache=off",
                                "--judge-concurrency=8", "--judge-timeout=30", "-p", "no:randomly")
    result.assert_outcomes(passed=6)
    assert model.arrivals == model.generations_finished == 6  # one model run per verdict
    assert model.max_open == 1 and not model.disconnects
    stats = http_stats(server)
    assert stats["upstream_calls_started"] == 6 and stats["upstream_queue_peak"] >= 2
    assert time.monotonic() - started < 15


def test_a_run_that_gives_up_leaves_the_model_idle(pytester, front, model):
    """The plugin times out on calls stuck in the queue: the model must not go on working for them."""
    model.generation_s = 0.5
    server = front(upstream_concurrency=1)
    pytester.makepyfile(test_slow_judge=DEFERRED_SUITE)
    pytester.runpytest("--judge-base-url", server.url, "--judge-mode=deferred", "--judge-cache=off",
                       "--judge-concurrency=6", "--judge-timeout=1", "--judge-retries=0", "-p", "no:randomly")
    ended = time.monotonic()
    wait_until(lambda: model.open == 0 and server.stats["upstream_queue_depth"] == 0, timeout=1.0)
    idle_after = time.monotonic() - ended
    assert server.stats["client_disconnects"] >= 3  # most calls were still queued when their client left
    arrivals = model.arrivals
    time.sleep(0.6)
    assert model.arrivals == arrivals, "calls of a finished run were still sent to the model"
    assert model.generations_started <= model.generations_finished + len(model.disconnects)
    assert idle_after < 1.0


def test_the_upstream_slots_follow_a_rate_limited_upstream(make_judge_server):
    """A 429 from the upstream halves the slots and holds new calls for its retry-after: every request gets
    through, with far fewer 429s than fixed slots earn (which fail requests once their resends run out)."""
    results = {}
    for adapt in (True, False):
        upstream = make_judge_server(rate_limit="10/s")  # our own server: an OpenAI-compatible, rate-limited model
        server = make_judge_server(engine="openai", upstream_base_url=upstream.url, upstream_model="pai-judge",
                                   upstream_concurrency=8, upstream_max_retries=6, upstream_adapt=adapt)
        statuses: list[int] = []

        def client(i: int, url: str = server.url, into: list[int] = statuses) -> None:
            into.append(httpx.post(f"{url}/chat/completions", json=body(f"Question {i}?"), timeout=60).status_code)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stats = http_stats(server)
        results[adapt] = (statuses.count(200), stats["upstream_throttled"], upstream.stats["rate_limited"])
        assert stats["upstream_throttled"] == upstream.stats["rate_limited"]  # every 429 the upstream gave was heard
    (ok, throttled, _), (fixed_ok, fixed_throttled, _) = results[True], results[False]
    assert ok == 30 and throttled > 0, results
    assert throttled < fixed_throttled and fixed_ok < 30, results
