"""The per-call failure policy: a timed-out call is not resent, and one call has a total time budget.

Real local server, real HTTP; the server's own counters say how many attempts reached it.
"""

from __future__ import annotations

import textwrap
import time

import pytest

from pytest_pai_judge.server import Fault

HEADER = "from pytest_pai_judge import assert_judge_score\nimport pytest\n"


def run(pytester: pytest.Pytester, server, *args: str):
    return pytester.runpytest("--judge-base-url", server.url, "-p", "no:cacheprovider", *args)


@pytest.mark.parametrize("mode", ["immediate", "deferred"])
def test_a_timed_out_call_is_sent_once(pytester, make_judge_server, mode):
    """A resend while the judge may still be working on the first copy pays twice; retries stay for errors."""
    server = make_judge_server(faults=[Fault("slow question", "timeout")], fault_timeout_s=5.0)
    pytester.makepyfile(HEADER + textwrap.dedent("""
        def test_slow():
            assert_judge_score("slow question?", "a.", 1)

        def test_fine():
            assert_judge_score("What is the capital of France?", "Paris.", 1)
    """))
    result = run(pytester, server, "--judge-timeout=0.5", "--judge-retries=3", f"--judge-mode={mode}")
    result.assert_outcomes(passed=1, failed=1)
    assert server.stats["fault_timeout"] == 1
    result.stdout.fnmatch_lines(["*the judge did not answer within 0.5*s at http://127.0.0.1:*(attempt 1); "
                                 "not resent, since the judge may still be working on it*"])


@pytest.mark.parametrize("mode", ["immediate", "deferred"])
def test_retries_stop_at_the_total_budget(pytester, make_judge_server, mode):
    """A judge that answers 500 slowly used to cost each test its retries in full (about 125 s)."""
    server = make_judge_server(faults=[Fault("broken", "500")], latency_ms=400)
    pytester.makepyfile(HEADER + textwrap.dedent("""
        def test_broken():
            assert_judge_score("broken question?", "a.", 1)
    """))
    started = time.monotonic()
    result = run(pytester, server, "--judge-timeout=5", "--judge-total-timeout=1.5", "--judge-retries=20",
                 f"--judge-mode={mode}")
    took = time.monotonic() - started
    result.assert_outcomes(failed=1)
    attempts = server.stats["fault_500"]
    assert 1 <= attempts <= 4, attempts  # usually 2; 1 when a loaded machine slows the first past the budget
    result.stdout.fnmatch_lines([f"*the judge call used up its total budget of 1.5s at http://127.0.0.1:* over "
                                 f"{attempts} attempts; the last one: HTTP 500*",
                                 "*raise --judge-total-timeout*"])
    assert took < 10, took


def test_an_attempt_is_cut_to_what_is_left_of_the_budget(pytester, make_judge_server):
    """The per-attempt timeout never outlasts the call's budget."""
    server = make_judge_server(faults=[Fault("slow question", "timeout")], fault_timeout_s=5.0)
    pytester.makepyfile(HEADER + textwrap.dedent("""
        def test_slow():
            assert_judge_score("slow question?", "a.", 1)
    """))
    started = time.monotonic()
    result = run(pytester, server, "--judge-timeout=30", "--judge-total-timeout=0.6")
    took = time.monotonic() - started
    result.assert_outcomes(failed=1)
    assert server.stats["fault_timeout"] == 1
    result.stdout.fnmatch_lines(["*the judge call used up its total budget of 0.6s*over 1 attempt; "
                                 "the last one: timed out*"])
    assert took < 4.5, took


def test_the_default_budget_is_twice_the_timeout(pytester, make_judge_server):
    server = make_judge_server(faults=[Fault("broken", "500")], latency_ms=300)
    pytester.makepyfile(HEADER + "def test_broken():\n    assert_judge_score('broken question?', 'a.', 1)\n")
    result = run(pytester, server, "--judge-timeout=0.4", "--judge-retries=20")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*used up its total budget of 0.8s*"])


def test_a_bad_budget_is_a_usage_error(pytester, judge_server):
    server = judge_server
    pytester.makepyfile(HEADER + "def test_x():\n    pass\n")
    result = run(pytester, server, "--judge-total-timeout=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--judge-total-timeout must be a positive number of seconds, got 0*"])
    pytester.makeini("[pytest]\njudge_total_timeout = soon\n")
    result = run(pytester, server)
    result.stderr.fnmatch_lines(["*ini key judge_total_timeout must be a number, got 'soon'*"])


def test_the_breakers_next_probe_counts_from_the_last_failure_not_from_when_that_call_began() -> None:
    """A probe that spends its retries for longer than the probe interval must not let the next call probe too."""
    from pytest_pai_judge import errors
    from pytest_pai_judge.breaker import PROBE_EVERY_S, Breaker

    now = [0.0]
    breaker = Breaker(3, clock=lambda: now[0])
    down = errors.JudgeConnectionError("connection refused")
    for _ in range(2):  # two calls, each retrying for 3 s before it fails
        assert breaker.refusal() is None
        now[0] += 3.0
        breaker.observe(down)
    assert breaker.open and breaker.refusal() is not None  # right after the failure: fail fast
    now[0] += PROBE_EVERY_S
    assert breaker.refusal() is None  # one probe, a probe interval after the last failure
    assert breaker.refusal() is not None
