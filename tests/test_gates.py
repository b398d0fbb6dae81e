"""Suite gates (``--judge-gate``): the grammar, the statistics, and real runs against a local judge server."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest

from pytest_pai_judge.gates import GateError, evaluate, parse_gate
from pytest_pai_judge.server import Fault

# --------------------------------------------------------------------------- grammar


def test_an_ini_line_may_end_with_a_comment() -> None:
    assert parse_gate("mean_score >= 4.0 for scene=翻译   # the translations").scope == ("scene", "翻译")


@pytest.mark.parametrize("text, metric, op, number, confidence, scope", [
    ("pass_rate >= 0.9", "pass_rate", ">=", 0.9, None, None),
    ("pass_rate>=0.9@95%", "pass_rate", ">=", 0.9, 0.95, None),
    ("mean_score >= 4.0 @ 0.9 for scene=翻译", "mean_score", ">=", 4.0, 0.9, ("scene", "翻译")),
    ("error_rate == 0", "error_rate", "==", 0.0, None, None),
    ("inconclusive_rate <= 0.05 for group=summaries @ 99%", "inconclusive_rate", "<=", 0.05, 0.99,
     ("group", "summaries")),
    ("pass_rate > 0.5 for model=pai-judge-plus", "pass_rate", ">", 0.5, None, ("model", "pai-judge-plus")),
])
def test_gates_parse(text, metric, op, number, confidence, scope) -> None:
    gate = parse_gate(text)
    assert (gate.metric, gate.op, gate.number, gate.confidence, gate.scope) == (metric, op, number, confidence, scope)


@pytest.mark.parametrize("text, message", [
    ("pass rate >= 0.9", "cannot read gate"),
    ("passrate >= 0.9", "unknown metric 'passrate'"),
    ("pass_rate >= 90", "a rate is a share from 0 to 1"),
    ("mean_score >= 7", "mean_score is on a 5-point scale"),
    ("pass_rate >= 0.9 @ 150%", "above 50% and below 100%"),
    ("pass_rate >= 0.9 for suite=x", "cannot scope by 'suite'"),
    ("error_rate == 0 @ 95%", "'==' takes no confidence"),
    ("pass_rate >= 0.9 please", "cannot read 'please'"),
    ("pass_rate >= 0.9 for scene=x for group=y", "one 'for KEY=VALUE' per gate"),
    ("", "an empty gate"),
    ("   ", "an empty gate"),
])
def test_bad_gates_say_what_is_wrong(text, message) -> None:
    with pytest.raises(GateError, match=message):
        parse_gate(text)


# --------------------------------------------------------------------------- statistics


def rows(met: int, failed: int, errors: int = 0, **fields) -> list[dict]:
    base = {"assertion": "score", "kind": "single", "max_score": 5, "outcome": "passed", **fields}
    return ([{**base, "passed": True, "score": 5.0} for _ in range(met)]
            + [{**base, "passed": False, "score": 2.0, "outcome": "failed"} for _ in range(failed)]
            + [{**base, "passed": None, "score": None, "error": "boom", "outcome": "failed"} for _ in range(errors)])


def test_the_wilson_interval_is_newcombes() -> None:
    """Newcombe (1998), Statistics in Medicine 17:857, table I: 81/263 -> Wilson 95% 0.2553 to 0.3662."""
    (result,) = evaluate([parse_gate("pass_rate >= 0.2 @ 95%")], rows(81, 263 - 81))
    assert (round(result.low, 4), round(result.high, 4)) == (0.2553, 0.3662)
    assert result.status == "held" and result.n == 263


def test_a_confidence_gate_fails_where_the_point_estimate_passes() -> None:
    plain, sure = evaluate([parse_gate("pass_rate >= 0.8"), parse_gate("pass_rate >= 0.8 @ 95%")], rows(9, 1))
    assert plain.status == "held" and plain.value == 0.9
    assert sure.status == "failed" and sure.low == pytest.approx(0.5958, abs=1e-4)
    assert "the value does, but the lower bound of its 95% interval does not" in sure.text()


def test_errors_count_against_the_rates_and_the_mean() -> None:
    results = evaluate([parse_gate(t) for t in ("pass_rate >= 0.9", "error_rate == 0", "mean_score >= 4.7")],
                       rows(9, 0, errors=1))
    assert [r.status for r in results] == ["held", "failed", "failed"]
    assert [r.n for r in results] == [10, 10, 10]
    assert results[2].value == pytest.approx(4.6)  # the error counts as 1 point (dropped, the mean would be 5)


def test_mean_score_puts_every_scale_on_five_points() -> None:
    ten = [{"assertion": "score", "kind": "custom", "max_score": 10, "passed": True, "score": 8.0}]
    five = [{"assertion": "score", "kind": "single", "max_score": 5, "passed": True, "score": 3.0}]
    (result,) = evaluate([parse_gate("mean_score >= 3.5")], ten + five)
    assert result.value == pytest.approx((4.0 + 3.0) / 2) and result.status == "held"


def test_the_mean_interval_is_a_seeded_bootstrap_near_the_t_interval() -> None:
    import numpy as np
    from scipy import stats

    scores = np.random.default_rng(7).integers(1, 6, size=300).astype(float)
    data = [{"assertion": "score", "kind": "single", "max_score": 5, "passed": True, "score": s} for s in scores]
    first, again = (evaluate([parse_gate("mean_score >= 2.5 @ 95%")], data)[0] for _ in range(2))
    assert (first.low, first.high) == (again.low, again.high)  # reproducible
    t_low, t_high = stats.t.interval(0.95, len(scores) - 1, loc=scores.mean(), scale=stats.sem(scores))
    assert abs(first.low - t_low) < 0.05 and abs(first.high - t_high) < 0.05
    assert first.low < scores.mean() < first.high


def test_values_and_known_bad_cases_are_not_counted_and_an_empty_scope_is_no_data() -> None:
    data = rows(1, 0) + [{"assertion": "value", "passed": None, "score": 1.0},
                         {**rows(0, 1)[0], "xfail": True, "outcome": "xfailed"}]
    scoped, whole = evaluate([parse_gate("pass_rate >= 0.9 for scene=翻译"), parse_gate("pass_rate >= 0.9")], data)
    assert scoped.status == "no data" and "no judged assertion with scene=翻译 in this run" in scoped.text()
    assert whole.status == "held" and whole.n == 1
    tiny = evaluate([parse_gate("mean_score >= 1 @ 95%")], rows(1, 0))[0]
    assert tiny.status == "failed" and "too few cases" in tiny.reason and math.isnan(tiny.low)
    two_equal = evaluate([parse_gate("mean_score >= 4.99 @ 99%")], rows(2, 0))[0]  # a zero-width bootstrap
    assert two_equal.status == "failed" and "too few cases" in two_equal.reason


def test_help_lists_the_gate_option(pytester: pytest.Pytester) -> None:
    """argparse formats help with %: a literal "95%" in a help text crashed ``pytest --help``."""
    result = pytester.runpytest("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--judge-gate=EXPR*"])
    assert "@ 95%" in result.stdout.str() and "%%" not in result.stdout.str()


# --------------------------------------------------------------------------- real runs

SUITE = '''
import pytest
from pytest_pai_judge import assert_judge_score

GOOD = "Paris is the capital of France."
REF = "Paris is the capital of France."

@pytest.mark.judge(group="geography")
@pytest.mark.parametrize("i", range(8))
def test_good(i):
    assert_judge_score(f"What is the capital of France? ({i})", GOOD, 1, ref_answer=REF)

@pytest.mark.parametrize("i", range(2))
def test_weak(i):
    assert_judge_score(f"What is the capital of France? (weak {i})", "Bananas are yellow.", 1, ref_answer=REF)

@pytest.mark.judge(defer=False)
def test_value(judge):
    judge.score("What is the capital of France?", GOOD, ref_answer=REF)
'''


def run(pytester: pytest.Pytester, server, *args: str):
    return pytester.runpytest("--judge-base-url", server.url, "-p", "no:cacheprovider", *args)


@pytest.mark.parametrize("extra", [["--judge-mode=immediate"], ["--judge-mode=deferred"], ["--judge-mode=batch"],
                                   ["-n", "2"], ["-n", "2", "--judge-mode=batch"]],
                         ids=["immediate", "deferred", "batch", "xdist", "xdist-batch"])
def test_a_gate_that_holds_and_one_that_fails(pytester: pytest.Pytester, judge_server, extra) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = run(pytester, judge_server, *extra, "--judge-gate", "pass_rate >= 0.9",
                 "--judge-gate", "mean_score >= 4.5", "--junitxml=junit.xml",
                 "--judge-report=r.json", "--judge-report=r.md", "--judge-report=r.html")
    result.assert_outcomes(passed=11)  # every test passed: only the gate fails the run
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*pai-judge gates*",
                                 "held   pass_rate >= 0.9: 1 over 10 assertions -- held",
                                 "FAILED mean_score >= 4.5: * over 10 assertions -- FAILED",
                                 "1 of 2 judge gates failed: the run fails"])
    sidecar = json.loads((pytester.path / "r.gates.json").read_text("utf-8"))
    assert [(g["gate"], g["status"], g["n"]) for g in sidecar] == [("pass_rate >= 0.9", "held", 10),
                                                                  ("mean_score >= 4.5", "failed", 10)]
    assert sidecar[1]["value"] < 4.5
    suite = ET.parse(pytester.path / "junit.xml").getroot().find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["judge_gate_1_status"] == "held" and props["judge_gate_2_status"] == "failed"
    md = (pytester.path / "r.md").read_text("utf-8")
    assert md.index("## Gates") < md.index("## Needs attention")
    assert "**Judge checks FAILED** — gate failed: mean_score &gt;= 4.5" in md
    assert "| **FAILED** | mean_score &gt;= 4.5 |" in md
    page = (pytester.path / "r.html").read_text("utf-8")
    assert page.index("id='verdict'") < page.index("id='gates'") < page.index("Needs attention")
    assert "gate failed: mean_score &gt;= 4.5" in page


def test_scoped_gates_and_a_gate_with_no_data(pytester: pytest.Pytester, judge_server) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\njudge_gates =\n    mean_score >= 4.5 for group=geography\n"
                     "    pass_rate >= 0.9 for scene=翻译\n")
    result = run(pytester, judge_server)
    assert result.ret == pytest.ExitCode.OK  # the geography group alone scores high; no data fails nothing
    result.stdout.fnmatch_lines(["held   mean_score >= 4.5 for group=geography: * over 8 assertions -- held",
                                 "NO DATA pass_rate >= 0.9 for scene=翻译: no data -- no judged assertion with "
                                 "scene=翻译 in this run*"])


def test_a_confidence_gate_fails_a_run_the_point_estimate_would_pass(pytester: pytest.Pytester, judge_server) -> None:
    pytester.makepyfile(test_suite=SUITE.replace('"Bananas are yellow.", 1', '"Bananas are yellow.", 4'))
    result = run(pytester, judge_server, "--judge-gate", "pass_rate >= 0.6 @ 95%", "--judge-gate", "pass_rate >= 0.6")
    result.assert_outcomes(passed=9, failed=2)
    result.stdout.fnmatch_lines(["FAILED pass_rate >= 0.6 @ 95%: 0.8 [0.49, 0.943] over 10 assertions -- FAILED "
                                 "(the value does, but the lower bound of its 95% interval does not)",
                                 "held   pass_rate >= 0.6: 0.8 over 10 assertions -- held"])


def test_judge_errors_count_against_the_gates(pytester: pytest.Pytester, make_judge_server) -> None:
    server = make_judge_server(faults=[Fault("weak", "greennet")])
    pytester.makepyfile(test_suite=SUITE)
    result = run(pytester, server, "--judge-gate", "error_rate == 0", "--judge-gate", "pass_rate >= 0.9",
                 "--judge-gate", "pass_rate >= 0.8")
    result.assert_outcomes(passed=9, failed=2)
    result.stdout.fnmatch_lines(["FAILED error_rate == 0: 0.2 over 10 assertions -- FAILED",
                                 "FAILED pass_rate >= 0.9: 0.8 over 10 assertions -- FAILED",
                                 "held   pass_rate >= 0.8: 0.8 over 10 assertions -- held"])


def test_a_bad_gate_is_a_usage_error_before_anything_is_judged(pytester: pytest.Pytester, judge_server) -> None:
    pytester.makepyfile(test_suite=SUITE)
    before = judge_server.stats["chat_completions"]
    result = run(pytester, judge_server, "--judge-gate", "pass_rate >= 90%")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--judge-gate: gate 'pass_rate >= 90%': a rate is a share from 0 to 1 (e.g. 0.9 for "
                                 "90%), got 90*"])
    result = run(pytester, judge_server, "--judge-gate", "pass rate above 0.9")
    result.stderr.fnmatch_lines(["*--judge-gate: cannot read gate 'pass rate above 0.9'*e.g. 'pass_rate >= 0.9 @ 95% "
                                 "for scene=翻译'*"])
    assert judge_server.stats["chat_completions"] == before
    pytester.makeini("[pytest]\njudge_gates = mean_score >= 9\n")
    result = run(pytester, judge_server)
    result.stderr.fnmatch_lines(["*judge_gates (ini): gate 'mean_score >= 9': mean_score is on a 5-point scale*"])
