"""Deferred judging end to end: inner pytest runs (pytester) against a real local judge server.

The core promise is checked first: the same suite gives the same outcomes, failure texts and exit
code in immediate, deferred and batch mode (passes, fails, a failed judge call, an unreadable
verdict, an xfail). Then the deferred-only parts: calls overlap the running tests, verdicts read
as values, the cache, ``--lf`` / junitxml / ``-x``, and pytest-xdist (held tests cross from the
workers to the controller, also when a worker crashes).
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_pai_judge.server import Fault, LocalJudgeServer

SUITE = '''
import pytest
from pytest_pai_judge import assert_judge_prefers, assert_judge_score

GOOD = "Paris is the capital of France. It lies on the Seine and is the country's largest city."


def test_pass():
    assert_judge_score("What is the capital of France?", GOOD, min=3)


def test_fail():
    assert_judge_score("What is the capital of France?", "bananas", min=4)


def test_failed_call():
    assert_judge_score("BOOM: what is the capital of France?", GOOD, min=1)


def test_unreadable():
    assert_judge_score("GARBLE: what is the capital of France?", GOOD, min=1)


@pytest.mark.xfail(reason="a weak answer", strict=True)
def test_xfail():
    assert_judge_score("What is the capital of France?", "bananas again", min=5)


def test_prefers():
    assert_judge_prefers("What is the capital of France?", GOOD, "bananas")


def test_second_assertion_fails():
    assert_judge_score("What is the capital of France?", GOOD, min=3)
    assert_judge_score("Name the capital of France.", "no idea", min=4)


def test_judge_fails_before_plain_assert():
    assert_judge_score("Which city is the capital of France?", "bananas", min=4)
    assert False, "immediate mode never gets here"
'''
EXPECTED = {"test_pass": "passed", "test_fail": "failed", "test_failed_call": "failed", "test_unreadable": "failed",
            "test_xfail": "skipped", "test_prefers": "passed", "test_second_assertion_fails": "failed",
            "test_judge_fails_before_plain_assert": "failed"}
FAULTS = [Fault("BOOM", "500"), Fault("GARBLE", "unreadable")]
_IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def stats(server: LocalJudgeServer) -> dict[str, int]:
    """The server's counters over HTTP, as a test outside the process would see them."""
    with urllib.request.urlopen(server.url.removesuffix("/v1") + "/_pai_judge/stats") as response:  # type: ignore[union-attr]
        return json.load(response)


def junit_outcomes(path: Path) -> dict[str, tuple[str, str]]:
    """test name -> (outcome, failure message with request ids masked)."""
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = _IDS.sub("<id>", node.get("message", ""))
        out[name] = (outcome, message)
    return out


def run_inner(pytester: pytest.Pytester, server: LocalJudgeServer, mode: str, *args: str,
              subprocess: bool = False, name: str = "junit") -> tuple[pytest.RunResult, dict[str, tuple[str, str]]]:
    xml = pytester.path / f"{name}-{mode}.xml"
    argv = ["--judge-base-url", server.url or "", f"--judge-mode={mode}", "--judge-cache=off", "-rA",
            f"--junitxml={xml}", "-p", "no:randomly", *args]
    result = pytester.runpytest_subprocess(*argv) if subprocess else pytester.runpytest(*argv)
    return result, junit_outcomes(xml)


@pytest.fixture
def faulty_server(make_judge_server: Callable[..., LocalJudgeServer]) -> LocalJudgeServer:
    return make_judge_server(latency_ms=50, faults=FAULTS)


# --------------------------------------------------------------------------- the same in every mode


def test_three_modes_agree(pytester: pytest.Pytester, faulty_server: LocalJudgeServer) -> None:
    pytester.makepyfile(test_suite=SUITE)
    runs = {mode: run_inner(pytester, faulty_server, mode) for mode in ("immediate", "deferred", "batch")}
    immediate_result, immediate = runs["immediate"]
    assert {k: v[0] for k, v in immediate.items()} == EXPECTED
    assert immediate_result.ret == pytest.ExitCode.TESTS_FAILED
    for mode in ("deferred", "batch"):
        result, outcomes = runs[mode]
        assert outcomes == immediate, mode  # outcome and the full failure message of every test
        assert result.ret == immediate_result.ret
        result.assert_outcomes(passed=2, failed=5, xfailed=1)
    messages = immediate
    assert "judge score 2/5 is below the minimum 4" in messages["test_fail"][1]
    assert "ModelServiceFailed" in messages["test_failed_call"][1]
    assert "Sorry, I am unable to evaluate" in messages["test_unreadable"][1]  # the raw text, never a pass
    assert "Name the capital of France" in messages["test_second_assertion_fails"][1]
    assert "JudgeAssertionError" in messages["test_judge_fails_before_plain_assert"][1]
    # The deferred failure points at the assertion's line in the test, like immediate mode.
    batch_text = runs["batch"][0].stdout.str()
    assert '>       assert_judge_score("What is the capital of France?", "bananas", min=4)' in batch_text
    source = (pytester.path / "test_suite.py").read_text().splitlines()
    line = 1 + next(i for i, text in enumerate(source) if '"What is the capital of France?", "bananas", min=4' in text)
    assert f"test_suite.py:{line}: JudgeAssertionError" in batch_text


EDGE_SUITE = '''
import unittest

import pytest
from pytest_pai_judge import assert_judge_score
from pytest_pai_judge.errors import JudgeAssertionError

GOOD = "Paris is the capital of France. It lies on the Seine and is the country's largest city."


def judged_bad(tag):
    assert_judge_score(f"{tag}: what is the capital of France?", "bananas", min=4)


def test_judge_then_skip():
    judged_bad("skip")
    pytest.skip("immediate mode never gets here")


def test_judge_then_imperative_xfail():
    judged_bad("xfail")
    pytest.xfail("immediate mode never gets here")


def test_good_then_skip():
    assert_judge_score("What is the capital of France?", GOOD, min=3)
    pytest.skip("a skip after a met assertion stays a skip")


@pytest.fixture
def judged_setup():
    judged_bad("setup")
    yield


@pytest.fixture
def judged_teardown():
    yield
    judged_bad("teardown")


def test_setup_assertion(judged_setup):
    pass


def test_teardown_assertion(judged_teardown):
    pass


def test_subtests(subtests):
    for i, answer in enumerate([GOOD, "bananas"]):
        with subtests.test(msg=f"answer {i}", i=i):
            assert_judge_score("subtests: what is the capital of France?", answer, min=4)


@pytest.mark.judge(defer=False)
def test_expects_the_judge_to_refuse():
    with pytest.raises(JudgeAssertionError):
        judged_bad("raises")


class TestUnit(unittest.TestCase):
    @unittest.expectedFailure
    def test_known_bad(self):
        judged_bad("unittest")


@pytest.fixture(scope="module")
def judged_module():
    yield
    judged_bad("module teardown")


def test_uses_module(judged_module):
    pass


def test_last_uses_module_and_skips(judged_module):
    pytest.skip("the module fixture tears down after this test")
'''


SCOPED_SUITE = '''
import pytest
from pytest_pai_judge import assert_judge_score


@pytest.fixture(scope="module")
def model_ready():
    assert_judge_score("module fixture: what is the capital of France?", "bananas", min=4)


def test_one(model_ready):
    pass


def test_two(model_ready):
    pass


def test_plain():
    pass


def test_three(model_ready):
    pass


class TestC:
    @pytest.fixture(scope="class")
    def cls_ready(self):
        assert_judge_score("class fixture: what is the capital of Italy?", "bananas", min=4)

    def test_c1(self, cls_ready):
        pass

    def test_c2(self, cls_ready):
        pass
'''


DYNAMIC_SUITE = '''
import pytest
from pytest_pai_judge import assert_judge_score


def bad():
    assert_judge_score("dynamic: what is the capital of France?", "Bananas are yellow fruit.",
                       ref_answer="Paris is the capital of France.")


@pytest.fixture(scope="module")
def shared():
    bad()
    return "base"


def test_d1_arg(shared):
    pass


def test_d2_dynamic(request):
    request.getfixturevalue("shared")


class TestOverride:
    @pytest.fixture
    def shared(self):
        return "own"

    def test_d3_override(self, shared):
        assert shared == "own"
'''
DYNAMIC_FIRST_SUITE = '''
import pytest
from pytest_pai_judge import assert_judge_score


@pytest.fixture(scope="module")
def shared():
    assert_judge_score("dynamic first: what is the capital of France?", "Bananas are yellow fruit.",
                       ref_answer="Paris is the capital of France.")


def test_f1_dynamic_first(request):
    request.getfixturevalue("shared")


def test_f2_arg(shared):
    pass
'''
PARAMS_SUITE = '''
import pytest
from pytest_pai_judge import assert_judge_score


@pytest.fixture(scope="module", params=["bananas", "Paris is the capital of France."], ids=["bad", "good"])
def answer(request):
    assert_judge_score("param fixture: what is the capital of France?", request.param, min=4,
                       ref_answer="Paris is the capital of France.")
    return request.param


def test_pa(answer):
    pass


def test_pb(answer):
    pass


@pytest.fixture(scope="session")
def sess():
    yield 1
    assert_judge_score("session teardown: what is the capital of France?", "bananas", min=4)


def test_s1(sess):
    pass


def test_s2(sess):
    pass
'''


def test_modes_agree_on_skips_fixtures_subtests_and_sync_tests(pytester: pytest.Pytester,
                                                              faulty_server: LocalJudgeServer) -> None:
    """Assertions before a skip / xfail, in fixtures, in subtests: each mode reports what immediate mode does."""
    pytester.makepyfile(test_edges=EDGE_SUITE, test_scoped=SCOPED_SUITE, test_params=PARAMS_SUITE,
                        test_dynamic=DYNAMIC_SUITE, test_dynamic_first=DYNAMIC_FIRST_SUITE)
    runs = {mode: run_inner(pytester, faulty_server, mode) for mode in ("immediate", "deferred", "batch")}
    immediate_result, immediate = runs["immediate"]
    assert immediate["test_judge_then_skip"][0] == "failed"
    assert immediate["test_judge_then_imperative_xfail"][0] == "failed"
    assert immediate["test_good_then_skip"][0] == "skipped"
    assert immediate["test_setup_assertion"][0] == "error"
    assert immediate["test_teardown_assertion"][0] == "error"
    immediate_result.stdout.fnmatch_lines(["ERROR test_edges.py::test_last_uses_module_and_skips - *"])
    for name in ("test_one", "test_two", "test_three", "test_c1", "test_c2"):  # pytest re-raises a fixture's error
        assert immediate[name][0] == "error", name
    assert immediate["test_plain"][0] == "passed"
    assert [immediate[f"{t}[{p}]"][0] for p in ("bad", "good") for t in ("test_pa", "test_pb")] == \
        ["error", "error", "passed", "passed"]  # a new param value is a new fixture value
    assert (immediate["test_d1_arg"][0], immediate["test_d2_dynamic"][0], immediate["test_d3_override"][0],
            immediate["test_f1_dynamic_first"][0], immediate["test_f2_arg"][0]) == \
        ("error", "failed", "passed", "failed", "error")  # getfixturevalue fails in the body; an override is new
    assert immediate["test_expects_the_judge_to_refuse"][0] == "passed"
    counts = immediate_result.parseoutcomes()
    for mode in ("deferred", "batch"):
        result, outcomes = runs[mode]
        assert outcomes == immediate, mode
        assert result.ret == immediate_result.ret
        assert result.parseoutcomes() == counts, mode
        result.stdout.fnmatch_lines(["ERROR test_edges.py::test_last_uses_module_and_skips - *"])
        text = result.stdout.str()
        assert "pytest_pai_judge/deferred/" not in text and "def locate" not in text, mode  # no plugin source in tracebacks
        source = (pytester.path / "test_edges.py").read_text().splitlines()
        line = 1 + next(i for i, t in enumerate(source) if 'judged_bad("teardown")' in t)
        assert f"test_edges.py:{line}: " in text, mode  # the fixture's own line


def test_long_tracebacks_are_the_same_in_every_mode(pytester: pytest.Pytester, faulty_server: LocalJudgeServer) -> None:
    """Argument lines (``a = '...'``) and helper frames included, under xdist too."""
    pytester.makepyfile(test_args='''
        import pytest
        from pytest_pai_judge import assert_judge_score

        def judged(tag, answer):
            prompt = f"{tag}: what is the capital of France?"
            assert_judge_score(prompt, answer, min=4)

        @pytest.mark.parametrize("a", ["Bananas are yellow fruit."])
        def test_p(a):
            judged("x", a)
    ''')

    def failure_section(*args: str) -> str:
        result, _ = run_inner(pytester, faulty_server, *args)
        text = result.stdout.str()
        start = text.index("___ test_p[")
        return text[start:text.index("JudgeAssertionError\n", text.index("test_args.py:", text.index("def judged", start)))]

    immediate = failure_section("immediate")
    assert "a = 'Bananas are yellow fruit.'" in immediate and "tag = 'x', answer = " in immediate
    assert failure_section("deferred") == immediate
    assert failure_section("batch", "-n", "1") == immediate
    with_locals = failure_section("immediate", "-l")
    assert "prompt     = 'x: what is the capital of France?'" in with_locals
    assert failure_section("deferred", "-l") == with_locals  # --showlocals: the same locals


def test_lambda_and_comprehension_frames_keep_their_names(pytester: pytest.Pytester,
                                                          faulty_server: LocalJudgeServer) -> None:
    pytester.makepyfile(test_names='''
        from pytest_pai_judge import assert_judge_score

        def test_lambda():
            check = lambda a: assert_judge_score("What is the capital of France?", a, min=4)
            check("bananas")

        def test_comp():
            [assert_judge_score(f"capital of France? {i}", "bananas", min=4) for i in range(1)]
    ''')
    frames = {}
    for mode in ("immediate", "deferred"):
        result, _ = run_inner(pytester, faulty_server, mode, "--tb=short")
        result.stdout.fnmatch_lines(["test_names.py:4: in <lambda>"])
        frames[mode] = [line for line in result.stdout.lines if line.startswith("test_names.py:")]
    assert frames["deferred"] == frames["immediate"]  # "<listcomp>" where Python has that frame (< 3.12)


def test_verbose_tracebacks_show_values_in_full_in_every_mode(pytester: pytest.Pytester,
                                                              faulty_server: LocalJudgeServer) -> None:
    pytester.makepyfile(test_long='''
        from pytest_pai_judge import assert_judge_score

        def judged(answer):
            context = {"k": list(range(60))}
            assert_judge_score("What is the capital of France?", answer, min=4)

        def test_long():
            judged("Bananas are yellow fruit. " * 20)
    ''')

    def failures(mode: str) -> str:
        result, _ = run_inner(pytester, faulty_server, mode, "-l", "-vvv")
        text = result.stdout.str()
        return text[text.index("___ test_long"):text.index("rerun only this test")]

    immediate = failures("immediate")
    assert "yellow fruit. ' * 20" not in immediate and immediate.count("Bananas are yellow fruit.") >= 20
    assert failures("deferred") == immediate


def test_stepwise_resumes_from_the_first_failure_in_every_mode(pytester: pytest.Pytester,
                                                              faulty_server: LocalJudgeServer) -> None:
    """--sw needs each failure as it happens: its tests are judged synchronously, so the resume point is the same."""
    pytester.makepyfile(test_sw='''
        import pytest
        from pytest_pai_judge import assert_judge_score

        @pytest.mark.parametrize("i", range(4))
        def test_bad(i):
            assert_judge_score(f"What is the capital of France? ({i})", "bananas", min=4)
    ''')
    resume = {}
    for mode in ("immediate", "deferred", "batch"):
        shutil.rmtree(pytester.path / ".pytest_cache", ignore_errors=True)
        result, _ = run_inner(pytester, faulty_server, mode, "--sw", "-p", "cacheprovider")
        result.assert_outcomes(failed=1)
        resume[mode] = json.loads((pytester.path / ".pytest_cache/v/cache/stepwise").read_text())["last_failed"]
    assert resume["deferred"] == resume["batch"] == resume["immediate"]


@pytest.mark.parametrize("mode", ["deferred", "batch"])
def test_stepwise_stop_is_not_a_ctrl_c(pytester: pytest.Pytester, faulty_server: LocalJudgeServer, mode: str) -> None:
    """--sw (and xdist's -x) stop with pytest.Session.Interrupted, a KeyboardInterrupt: held tests still settle."""
    pytester.makepyfile(test_sw='''
        from pytest_pai_judge import assert_judge_score

        def test_good():
            assert_judge_score("What is the capital of France?", "Paris is the capital of France.", min=1)

        def test_plain():
            assert 0
    ''')
    result, outcomes = run_inner(pytester, faulty_server, mode, "--sw", "-p", "cacheprovider")
    assert outcomes["test_good"][0] == "passed", outcomes
    assert "interrupted" not in result.stdout.str().lower().replace("interrupted: ", "")


def test_a_failed_call_shows_no_client_frames(pytester: pytest.Pytester, faulty_server: LocalJudgeServer) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result, _ = run_inner(pytester, faulty_server, "deferred", "-k", "failed_call")
    text = result.stdout.str()
    assert "ModelServiceFailed" in text and "client.py" not in text and "acomplete" not in text


def test_quiet_progress_characters_end_before_the_settling_line(pytester: pytest.Pytester,
                                                                faulty_server: LocalJudgeServer) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result, _ = run_inner(pytester, faulty_server, "deferred", "-q")
    assert any(line.startswith("pai-judge: judging") for line in result.stdout.lines)


def test_settling_prints_one_line_then_the_held_tests(pytester: pytest.Pytester,
                                                      faulty_server: LocalJudgeServer) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result, _ = run_inner(pytester, faulty_server, "deferred", "-v")
    text = result.stdout.str()
    line = next(ln for ln in text.splitlines() if ln.startswith("pai-judge: judging"))
    assert line.endswith("…") and "deferred verdicts" in line and "concurrent calls" in line
    # the xfail test is judged synchronously and logs first; the held ones log after the line
    assert text.index("test_xfail XFAIL") < text.index("pai-judge: judging") < text.index("test_pass PASSED")


# --------------------------------------------------------------------------- deferred: concurrency


def test_calls_start_while_later_tests_still_run(pytester: pytest.Pytester,
                                                 make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    server = make_judge_server(latency_ms=400)
    pytester.makepyfile(test_overlap=f'''
        import json, time, urllib.request
        import pytest
        from pytest_pai_judge import assert_judge_score

        @pytest.mark.parametrize("i", range(8))
        def test_judged(i):
            assert_judge_score(f"What is the capital of France? ({{i}})", "Paris is the capital.", min=1)

        def test_zz_last():
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with urllib.request.urlopen("{server.url.removesuffix('/v1')}/_pai_judge/stats") as r:
                    if json.load(r).get("judgements", 0) >= 4:
                        return
                time.sleep(0.05)
            pytest.fail("no judgement was made while the tests were still running")
    ''')
    result, outcomes = run_inner(pytester, server, "deferred", "--judge-concurrency=4")
    result.assert_outcomes(passed=9)
    span = re.search(r"pai-judge: 8 verdicts judged in ([0-9.]+)s", result.stdout.str())
    assert span is not None
    assert float(span.group(1)) < 8 * 0.4 * 0.75  # 4 at a time, not one after another


LOGGED_AS_THEY_SETTLE = '''
import pytest
from pytest_pai_judge import assert_judge_score

ORDER = {order!r}


@pytest.mark.parametrize("name", ORDER)
def test_judged(name):
    assert_judge_score(f"{{name}}: what is the capital of France?", "Paris is the capital.", min=1)
'''

LOG_TIMES = '''
import json, time

TIMES = {}


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        TIMES[report.nodeid.split("[")[1].rstrip("]")] = time.monotonic()


def pytest_sessionfinish(session):
    with open("log-times.json", "w") as out:
        json.dump(TIMES, out)
'''


@pytest.mark.parametrize("slow_first", [False, True], ids=["slow-last", "slow-first"])
def test_held_tests_are_logged_as_their_verdicts_come_in_in_the_order_they_ran(
        pytester: pytest.Pytester, make_judge_server: Callable[..., LocalJudgeServer], slow_first: bool) -> None:
    """A test whose verdict is in is logged while slower calls still run, never before a test that ran earlier."""
    server = make_judge_server(latency_ms=50, faults=[Fault("SLOW", "timeout")], fault_timeout_s=2.0)
    order = ["SLOW", "a", "b", "c"] if slow_first else ["a", "b", "c", "SLOW"]
    pytester.makepyfile(test_settle_order=LOGGED_AS_THEY_SETTLE.format(order=order))
    pytester.makeconftest(LOG_TIMES)
    result, outcomes = run_inner(pytester, server, "deferred", "--judge-retries=0", "--judge-timeout=10")
    result.assert_outcomes(passed=3, failed=1)
    assert "judge model timed out" in outcomes["test_judged[SLOW]"][1]
    times = json.loads((pytester.path / "log-times.json").read_text())
    assert sorted(times, key=times.get) == order  # logged in the order they ran
    fast_done = max(times[n] for n in "abc")
    if slow_first:  # the slow test holds the later ones back: they log right after it
        assert times["SLOW"] <= min(times[n] for n in "abc") and fast_done - times["SLOW"] < 0.5
    else:  # the fast ones are logged while the slow call still runs
        assert times["SLOW"] - fast_done > 1.0, times


def test_concurrency_must_be_positive(pytester: pytest.Pytester, faulty_server: LocalJudgeServer) -> None:
    pytester.makepyfile(test_one="def test_x():\n    pass\n")
    result = pytester.runpytest("--judge-base-url", faulty_server.url or "", "--judge-mode=deferred",
                                "--judge-concurrency=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--judge-concurrency must be a whole number of calls, 1 or more, got 0*"])


# --------------------------------------------------------------------------- values in the test body


VALUE_SUITE = '''
def test_reads_a_value(judge):
    verdict = judge.score("What is the capital of France?", "Paris is the capital of France.")
    assert verdict.score >= 3
'''


@pytest.mark.parametrize("mode", ["deferred", "batch"])
def test_value_in_the_body_is_a_clear_error(pytester: pytest.Pytester, faulty_server: LocalJudgeServer,
                                            mode: str) -> None:
    pytester.makepyfile(test_value=VALUE_SUITE)
    result, outcomes = run_inner(pytester, faulty_server, mode)
    assert outcomes["test_reads_a_value"][0] == "failed"
    message = outcomes["test_reads_a_value"][1]
    assert "DeferredVerdictError" in message and f"--judge-mode={mode}" in message
    assert "--judge-batch-fallback=immediate" in message and "@pytest.mark.judge(defer=False)" in message


@pytest.mark.parametrize("mode", ["deferred", "batch"])
def test_a_value_is_an_error_even_when_cached(pytester: pytest.Pytester, faulty_server: LocalJudgeServer,
                                              mode: str) -> None:
    """Whether a value read in the body passes must not depend on what the cache holds."""
    pytester.makepyfile(test_value=VALUE_SUITE)
    warm = pytester.runpytest("--judge-base-url", faulty_server.url or "", "--judge-mode=immediate")
    warm.assert_outcomes(passed=1)
    result = pytester.runpytest("--judge-base-url", faulty_server.url or "", f"--judge-mode={mode}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DeferredVerdictError*"])
    cached = pytester.runpytest("--judge-base-url", faulty_server.url or "", f"--judge-mode={mode}",
                                "--judge-batch-fallback=immediate")
    cached.assert_outcomes(passed=1)
    cached.stdout.fnmatch_lines(["*verdicts: 0 fresh, 1 from cache*"])  # the fallback uses the cache first


def test_value_fallback_makes_a_synchronous_call(pytester: pytest.Pytester, faulty_server: LocalJudgeServer) -> None:
    pytester.makepyfile(test_value=VALUE_SUITE)
    before = stats(faulty_server).get("chat_completions", 0)
    result, _ = run_inner(pytester, faulty_server, "batch", "--judge-batch-fallback=immediate")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 judged test (as pytest counts them): 1 passed", "1 verdict read as a value"])  # the value is reported, as in immediate mode
    assert stats(faulty_server).get("chat_completions", 0) == before + 1
    assert stats(faulty_server).get("batches_created", 0) == 0


# --------------------------------------------------------------------------- cache, --lf, junitxml, -x


def test_cached_verdicts_resolve_at_once_and_lf_sees_final_outcomes(
        pytester: pytest.Pytester, make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    server = make_judge_server(latency_ms=20)
    pytester.makepyfile(test_cached='''
        from pytest_pai_judge import assert_judge_score

        def test_good():
            assert_judge_score("What is the capital of France?", "Paris is the capital of France.", min=3)

        def test_bad():
            assert_judge_score("What is the capital of France?", "bananas", min=4)
    ''')
    args = ["--judge-base-url", server.url or "", "--judge-mode=deferred", "-p", "no:randomly"]
    first = pytester.runpytest(*args, "--junitxml=first.xml")
    first.assert_outcomes(passed=1, failed=1)
    suite = ET.parse(pytester.path / "first.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    props = {p.get("name") for p in ET.parse(pytester.path / "first.xml").getroot().iter("property")}
    assert {"judge_score", "judge_model", "judge_threshold"} <= props
    calls = stats(server).get("chat_completions", 0)
    again = pytester.runpytest(*args, "--lf")
    again.assert_outcomes(failed=1)  # --lf saw the deferred failure, and only it
    again.stdout.fnmatch_lines(["*test_cached.py::test_bad*"])
    assert "pai-judge: judging" not in again.stdout.str()  # the cache answered: nothing held
    assert stats(server).get("chat_completions", 0) == calls


def test_exitfirst_still_settles_the_held_tests(pytester: pytest.Pytester, faulty_server: LocalJudgeServer) -> None:
    pytester.makepyfile(test_x='''
        from pytest_pai_judge import assert_judge_score

        def test_a_held():
            assert_judge_score("What is the capital of France?", "bananas", min=4)

        def test_b_plain_failure():
            assert 1 == 2

        def test_c_never_runs():
            pass
    ''')
    result, outcomes = run_inner(pytester, faulty_server, "deferred", "-x")
    assert outcomes == {"test_a_held": ("failed", outcomes["test_a_held"][1]),
                        "test_b_plain_failure": ("failed", outcomes["test_b_plain_failure"][1])}
    assert "judge score" in outcomes["test_a_held"][1]
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_replay_mode_never_calls_the_judge(pytester: pytest.Pytester, faulty_server: LocalJudgeServer) -> None:
    pytester.makepyfile(test_suite=SUITE)
    before = stats(faulty_server)
    result = pytester.runpytest("--judge-base-url", faulty_server.url or "", "--judge-mode=batch",
                                "--judge-cache=replay", "-k", "test_pass")
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines(["*ReplayMiss*"])
    assert stats(faulty_server) == before


# --------------------------------------------------------------------------- pytest-xdist


def test_xdist_deferred_matches_single_process(pytester: pytest.Pytester, faulty_server: LocalJudgeServer) -> None:
    pytester.makepyfile(test_suite=SUITE)
    _, single = run_inner(pytester, faulty_server, "batch")
    result, spread = run_inner(pytester, faulty_server, "deferred", "-n", "2", subprocess=True)
    assert spread == single
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_crashed_worker_loses_no_held_test(pytester: pytest.Pytester,
                                           make_judge_server: Callable[..., LocalJudgeServer]) -> None:
    server = make_judge_server(latency_ms=20)
    pytester.makepyfile(test_crash='''
        import os
        from pytest_pai_judge import assert_judge_score

        def test_a_good():
            assert_judge_score("What is the capital of France?", "Paris is the capital of France.", min=3)

        def test_b_bad():
            assert_judge_score("What is the capital of France?", "bananas", min=4)

        def test_c_crash():
            os._exit(3)

        def test_d_after():
            assert_judge_score("Name the capital of France.", "Paris is the capital of France.", min=3)
    ''')
    result, outcomes = run_inner(pytester, server, "batch", "-n", "1", subprocess=True)
    assert outcomes.pop("test_c_crash")[0] in ("failed", "error")  # xdist reports the crash itself
    assert {k: v[0] for k, v in outcomes.items()} == {"test_a_good": "passed", "test_b_bad": "failed",
                                                      "test_d_after": "passed"}
    result.stdout.fnmatch_lines(["*pai-judge warning: xdist worker gw0 went down*held test*"])
    assert stats(server).get("batches_created", 0) == 1
    assert not list((pytester.path / ".pai_judge_cache" / "spool").glob("*.jsonl"))


@pytest.mark.parametrize("mode", ["deferred", "batch"])
def test_ctrl_c_under_xdist_reports_the_held_tests_as_not_passed(
        pytester: pytest.Pytester, make_judge_server: Callable[..., LocalJudgeServer], mode: str) -> None:
    """Ctrl-C reaches the controller and the workers while tests still run; nothing held may vanish."""
    import os
    import signal
    import subprocess
    import sys
    import time

    server = make_judge_server(latency_ms=20)
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_slow='''
        import time
        import pytest
        from pytest_pai_judge import assert_judge_score

        @pytest.mark.parametrize("i", range(40))
        def test_slow(i):
            assert_judge_score(f"What is the capital of France? ({i})", "Paris is the capital of France.", min=1)
            time.sleep(0.3)
    ''')
    xml = pytester.path / "junit.xml"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:randomly", f"--judge-mode={mode}",
                             "--judge-cache=off", f"--judge-base-url={server.url}", f"--junitxml={xml}", "-rA"],
                            cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    spool = pytester.path / ".pai_judge_cache" / "spool"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until both workers hold a few tests
        held = sum(len(f.read_text().splitlines()) for f in spool.glob("*.jsonl")) if spool.exists() else 0
        if held >= 4:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    out, _ = proc.communicate(timeout=60)
    assert held >= 4, out
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    outcomes = junit_outcomes(xml)
    assert len(outcomes) >= held, out  # every held test is reported ...
    assert all(outcome != "passed" for outcome, _ in outcomes.values()), out  # ... and none as passed
    assert "interrupted" in out
    assert not list(spool.glob("*.jsonl"))


@pytest.mark.parametrize("mode", ["immediate", "deferred", "batch"])
def test_reruns_work_in_every_mode(pytester: pytest.Pytester, faulty_server: LocalJudgeServer, mode: str) -> None:
    """pytest-rerunfailures keeps rerunning tests: with --reruns the plugin leaves the protocol to it."""
    pytest.importorskip("pytest_rerunfailures")
    pytester.makepyfile(test_flaky='''
        import pytest
        from pytest_pai_judge import assert_judge_score

        STATE = {"plain": 0, "judged": 0}

        def test_flaky_plain():
            STATE["plain"] += 1
            assert STATE["plain"] > 1

        def test_judged_flaky():
            STATE["judged"] += 1
            answer = "bananas" if STATE["judged"] == 1 else "Paris is the capital of France."
            assert_judge_score("What is the capital of France?", answer, min=3)
    ''')
    result, _ = run_inner(pytester, faulty_server, mode, "--reruns", "1")
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("rerun"), outcomes.get("failed")) == (2, 2, None), outcomes


def test_ctrl_c_while_the_verdicts_are_logged_loses_no_test(pytester: pytest.Pytester,
                                                            faulty_server: LocalJudgeServer) -> None:
    """A Ctrl-C landing while held tests are being logged waits until all of them are (a few ms)."""
    pytester.makeconftest('''
        import os
        import signal

        def pytest_runtest_logreport(report):
            if report.when == "call" and report.nodeid.endswith("[0]"):
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the first held test is logged
    ''')
    pytester.makepyfile(test_many='''
        import pytest
        from pytest_pai_judge import assert_judge_score

        @pytest.mark.parametrize("i", range(5))
        def test_judged(i):
            assert_judge_score(f"What is the capital of France? ({i})", "Paris is the capital of France.", min=1)
    ''')
    result, outcomes = run_inner(pytester, faulty_server, "batch", subprocess=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert sorted(outcomes) == [f"test_judged[{i}]" for i in range(5)], result.stdout.str()
    assert all(outcome == "passed" for outcome, _ in outcomes.values())  # judged before the Ctrl-C came


def test_another_protocol_owner_still_gets_judged(pytester: pytest.Pytester, faulty_server: LocalJudgeServer) -> None:
    """If a plugin like rerunfailures runs the protocol itself, the verdict is judged at once, not lost."""
    pytester.makeconftest('''
        import pytest
        from _pytest.runner import runtestprotocol

        class TakeOver:
            @pytest.hookimpl(tryfirst=True)
            def pytest_runtest_protocol(self, item, nextitem):
                item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
                runtestprotocol(item, nextitem=nextitem, log=True)
                item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
                return True

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            config.pluginmanager.register(TakeOver(), "takeover")
    ''')
    pytester.makepyfile(test_x='''
        from pytest_pai_judge import assert_judge_score

        def test_bad():
            assert_judge_score("What is the capital of France?", "bananas", min=4)

        def test_good():
            assert_judge_score("What is the capital of France?", "Paris is the capital of France.", min=3)
    ''')
    result, outcomes = run_inner(pytester, faulty_server, "batch")
    assert {k: v[0] for k, v in outcomes.items()} == {"test_bad": "failed", "test_good": "passed"}
    assert "judge score 2/5 is below the minimum 4" in outcomes["test_bad"][1]
    assert stats(faulty_server).get("batches_created", 0) == 0  # judged online, at once


@pytest.mark.parametrize("mode", ["deferred", "batch"])
def test_a_refused_value_read_is_a_report_row_with_its_error(pytester: pytest.Pytester, mode: str) -> None:
    """A test failed by DeferredVerdictError had no row: the reports did not count it (nor drift, as "gone")."""
    pytester.makepyfile(textwrap.dedent("""
        def test_reads_a_value(judge):
            judge.score("What is the capital of France?", "Paris.")
    """))
    result = pytester.runpytest("-p", "no:cacheprovider", f"--judge-mode={mode}", "--judge-report=r.json")
    result.assert_outcomes(failed=1)
    (row,) = json.loads((pytester.path / "r.json").read_text("utf-8"))
    assert row["assertion"] == "value" and "DeferredVerdictError" in (row["error"] or "")
    assert row["outcome"] == "failed" and row["status"] == "error"
    result.stdout.fnmatch_lines(["*1 verdict read as a value*"])
