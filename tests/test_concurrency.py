"""Deferred mode's adaptive limit: AIMD on a fake clock, and real runs against a rate-limited local server."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from pytest_pai_judge.concurrency import AdaptiveLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_grows_by_about_one_per_round_trip_of_answers_up_to_its_ceiling() -> None:
    clock = Clock()
    limit = AdaptiveLimit(4, 6, clock=clock)
    for _ in range(4):  # one round trip at 4 in flight
        limit.answered(0.2)
    assert limit.allowed == 4 and 4.9 < limit.limit < 5.0
    for _ in range(50):
        limit.answered(0.2)
    assert limit.allowed == 6 and limit.peak == 6  # never past the ceiling


def test_a_429_halves_the_limit_once_per_round_trip_and_pauses_new_calls() -> None:
    clock = Clock()
    limit = AdaptiveLimit(16, 64, clock=clock)
    limit.answered(0.2)
    sent = clock.now - 0.01
    limit.rate_limited(0.05, sent)
    assert limit.allowed == 8 and limit.paused_until == pytest.approx(clock.now + 0.05)
    limit.rate_limited(0.05, sent)  # another call of the same burst, sent before the cut: not cut again
    assert limit.allowed == 8 and limit.throttled == 2
    clock.now += 0.3
    limit.rate_limited(None, clock.now - 0.01)  # one sent after the cut, without retry-after: 1 s
    assert limit.allowed == 4 and limit.paused_until == pytest.approx(clock.now + 1.0)
    for _ in range(100):
        clock.now += 1
        limit.rate_limited(0.05, clock.now)
    assert limit.allowed == 1  # never below one call


def test_answers_slowing_down_cut_the_limit() -> None:
    clock = Clock()
    limit = AdaptiveLimit(8, 64, clock=clock)
    limit.answered(0.2)
    limit.answered(0.3)  # within 2x the fastest: still an increase
    assert limit.allowed == 8 and limit.limit > 8
    limit.answered(0.9)  # the judge is queueing our calls
    assert limit.allowed == 6


def test_a_fixed_limit_never_moves_and_never_pauses() -> None:
    limit = AdaptiveLimit(4, 64, adaptive=False, clock=Clock())
    for _ in range(20):
        limit.answered(0.2)
    limit.rate_limited(5.0)
    assert limit.allowed == 4 and limit.paused_until == 0 and limit.text() == "fixed 4, 1 x 429"


def test_acquire_admits_at_most_the_limit_and_waits_out_a_pause() -> None:
    async def scenario() -> tuple[int, float]:
        limit = AdaptiveLimit(3, 3)
        inside = peak = 0

        async def call() -> None:
            nonlocal inside, peak
            await limit.acquire()
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.01)
            inside -= 1
            limit.release()

        await asyncio.gather(*(call() for _ in range(12)))
        limit.rate_limited(0.2)
        started = asyncio.get_running_loop().time()
        await limit.acquire()
        limit.release()
        return peak, asyncio.get_running_loop().time() - started

    peak, waited = asyncio.run(scenario())
    assert peak == 3
    assert waited >= 0.19


SUITE = textwrap.dedent("""
    import pytest
    from pytest_pai_judge import assert_judge_score

    @pytest.mark.parametrize("i", range(60))
    def test_judged(i):
        assert_judge_score(f"What is the capital of France? (case {i})", "Paris is the capital of France.", min=1)
""")


def test_adaptive_deferred_mode_finishes_a_rate_limited_run_with_no_failure(pytester: pytest.Pytester,
                                                                             make_judge_server) -> None:
    server = make_judge_server(latency_ms=100, rate_limit="15/s")
    pytester.makepyfile(test_rated=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--judge-base-url", server.url, "--judge-cache=off",
                                "--judge-mode=deferred", "--judge-concurrency=32", "--judge-retries=0")
    result.assert_outcomes(passed=60)
    assert server.stats["rate_limited"] > 0  # it was asked to slow down, and did
    result.stdout.fnmatch_lines(["*verdicts judged in *s from the first call to the last answer (concurrent calls: "
                                 "adaptive 32 -> * x 429)*"])


def test_a_fixed_limit_above_the_rate_fails_tests_the_adaptive_one_would_not(pytester: pytest.Pytester,
                                                                             make_judge_server) -> None:
    server = make_judge_server(latency_ms=100, rate_limit="15/s")
    pytester.makepyfile(test_rated=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--judge-base-url", server.url, "--judge-cache=off",
                                "--judge-mode=deferred", "--judge-concurrency=32", "--judge-retries=0",
                                "--no-judge-adapt")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) > 0, outcomes
    result.stdout.fnmatch_lines(["*RateLimited*"])


def test_waiters_are_never_forgotten_when_a_pause_ends_with_nothing_in_flight() -> None:
    """The lost wake-up: every call refused (429) while more wait, nothing in flight to free a slot later."""
    async def scenario() -> int:
        limit = AdaptiveLimit(16, 64)
        done = 0

        async def call(i: int) -> None:
            nonlocal done
            await limit.acquire()
            await asyncio.sleep(0.005)
            if i < 16:  # the first wave is refused: pause, halve
                limit.rate_limited(0.05, asyncio.get_running_loop().time())
            limit.release()
            done += 1

        await asyncio.wait_for(asyncio.gather(*(call(i) for i in range(100))), timeout=10)
        return done

    assert asyncio.run(scenario()) == 100


def test_deferred_mode_finishes_against_a_judge_that_limits_concurrent_requests(pytester: pytest.Pytester,
                                                                                make_judge_server) -> None:
    """Every call of the first waves refused (429), nothing left in flight: the paused waiters still get their turn."""
    server = make_judge_server(latency_ms=100, rate_limit="4")
    pytester.makepyfile(test_rated=SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--judge-base-url", server.url,
                                           "--judge-cache=off", "--judge-mode=deferred", "--judge-concurrency=32",
                                           timeout=90)
    result.assert_outcomes(passed=60)
    assert server.stats["rate_limited"] > 0
