"""Every count the plugin prints or writes is pinned to pytest's own outcome of each test.

One suite (a pass, a fail, a strict XPASS, an XPASS, an XFAIL, a judge error under xfail with and
without ``raises=``, a /10 custom template) runs in every mode, with and without xdist, against a
real local judge server over HTTP; the terminal, CSV / JSON / Parquet, Markdown, HTML and junitxml
must all say what pytest's ``-rA`` summary says.
"""

from __future__ import annotations

import json
import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from pytest_pai_judge.report.table import read_report
from pytest_pai_judge.server.config import Fault
from pytest_pai_judge.terminal import display_width, pad

SUITE = textwrap.dedent("""
    import pytest
    from pytest_pai_judge import assert_judge_custom, assert_judge_score, errors

    Q, GOOD, BAD = "What is the capital of France?", "The capital of France is Paris.", "Bananas are yellow."
    REF = "Paris is the capital of France."

    def test_pass():
        assert_judge_score(Q, GOOD, 1, ref_answer=REF, scene_desc=None)

    def test_fail():
        assert_judge_score(Q, BAD, 4, ref_answer=REF)

    @pytest.mark.xfail(strict=True, reason="known bad")
    def test_strict_xpass():
        assert_judge_score(Q, GOOD + " Strict.", 1, ref_answer=REF)

    @pytest.mark.xfail(reason="known bad")
    def test_xpass():
        assert_judge_score(Q, GOOD + " Loose.", 1, ref_answer=REF)

    @pytest.mark.xfail(reason="known bad")
    def test_xfail():
        assert_judge_score(Q, BAD + " Still.", 4, ref_answer=REF)

    @pytest.mark.xfail(reason="known bad")
    def test_judge_error_under_xfail():
        assert_judge_score("GREENNET " + Q, GOOD, 1)

    @pytest.mark.xfail(raises=errors.GreenNetFilter, reason="the filter is expected")
    def test_judge_error_named_by_raises():
        assert_judge_score("GREENNET again " + Q, GOOD, 1)

    def test_ten_point_template():
        assert_judge_custom("Rate the answer from 1 to 10. Question: " + Q + " Answer: " + GOOD, min=1,
                            max_score=10, temperature=0.3)

    def test_not_judged():
        pass
""")

PYTEST_SAYS = {"test_pass": "passed", "test_fail": "failed", "test_strict_xpass": "failed", "test_xpass": "xpassed",
               "test_xfail": "xfailed", "test_judge_error_under_xfail": "failed",
               "test_judge_error_named_by_raises": "xfailed", "test_ten_point_template": "passed"}
"""What pytest decides for each judged test (what every count must agree with)."""
ASSERTION_SAYS = {"test_pass": "met", "test_fail": "not met", "test_strict_xpass": "met", "test_xpass": "met",
                  "test_xfail": "not met", "test_judge_error_under_xfail": "error",
                  "test_judge_error_named_by_raises": "error", "test_ten_point_template": "met"}
SHORT = {"PASSED": "passed", "FAILED": "failed", "XFAIL": "xfailed", "XPASS": "xpassed", "ERROR": "error",
         "SKIPPED": "skipped"}
FORMATS = (".csv", ".json", ".parquet", ".md", ".html")


@pytest.fixture(scope="module", autouse=True)
def parquet_loaded_before_pytester(tmp_path_factory: pytest.TempPathFactory) -> None:
    """pyarrow's extension types survive only one import: load the parquet engine out here (see test_reporting_plugin)."""
    path = tmp_path_factory.mktemp("warm") / "w.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    pd.read_parquet(path)


@pytest.fixture
def server(make_judge_server):
    return make_judge_server(faults=[Fault("GREENNET", "greennet")])


def run(pytester: pytest.Pytester, server, *args: str, subprocess: bool = False) -> pytest.RunResult:
    argv = ("--judge-base-url", server.url, "-p", "no:cacheprovider", "-rA", *args)
    return pytester.runpytest_subprocess(*argv) if subprocess else pytester.runpytest(*argv)


def pytest_outcomes(result: pytest.RunResult) -> dict[str, str]:
    """Each test's outcome from pytest's own ``-rA`` short summary."""
    found = {}
    for line in result.outlines:
        match = re.match(r"(PASSED|FAILED|XFAIL|XPASS|ERROR|SKIPPED) \S*::(\w+)", line)
        if match:
            found[match.group(2)] = SHORT[match.group(1)]
    return found


def junit_cases(path: Path) -> dict[str, tuple[str, dict[str, list[str]]]]:
    """Per test: its junitxml result (failed / error / xfailed / skipped / passed) and its properties."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        props: dict[str, list[str]] = {}
        for prop in case.iter("property"):
            props.setdefault(prop.get("name", ""), []).append(prop.get("value", ""))
        skipped = case.find("skipped")
        result = "failed" if case.find("failure") is not None else "error" if case.find("error") is not None else \
            ("xfailed" if skipped.get("type") == "pytest.xfail" else "skipped") if skipped is not None else "passed"
        cases[case.get("name", "")] = (result, props)
    return cases


def name(nodeid: str) -> str:
    return nodeid.rpartition("::")[2]


def check_every_count(pytester: pytest.Pytester, result: pytest.RunResult, mode: str) -> None:
    said = pytest_outcomes(result)
    judged = {k: v for k, v in said.items() if k != "test_not_judged"}
    assert judged == PYTEST_SAYS, result.stdout.str()
    # terminal: the same tests, counted as pytest counts them
    result.stdout.fnmatch_lines(["8 judged tests (as pytest counts them): 2 passed, 3 failed, 2 xfailed, 1 xpassed",
                                 "8 judged assertions: 4 met, 2 not met, 2 errors (no verdict)"])
    counted = result.parseoutcomes()
    assert counted["failed"] == 3 and counted["xfailed"] == 2 and counted["xpassed"] == 1 and counted["passed"] == 3
    terminal = re.search(r"verdicts: (\d+) fresh, (\d+) from cache; fresh calls: (\d+); report rows: (\d+); "
                         r"tokens: ([\d,]+) spent this run, ([\d,]+) recorded with cached verdicts; mode: (\w+)",
                         result.stdout.str())
    assert terminal is not None, result.stdout.str()
    fresh, cached, calls, rows, spent, recorded, shown_mode = terminal.groups()
    assert shown_mode == mode and int(rows) == 8
    result.stdout.re_match_lines([r"mean score per scale: [\d.]+/5 \(5 scores\), [\d.]+/10 \(1 score\)"])
    # CSV / JSON / Parquet: each row carries its test's outcome and its own verdict
    for suffix in (".csv", ".json", ".parquet"):
        df = read_report(pytester.path / f"r{suffix}")
        assert {name(n): o for n, o in zip(df["nodeid"], df["outcome"])} == PYTEST_SAYS, suffix
        assert int(df["calls"].sum()) == int(calls) and int(df["tokens"].sum()) == int(spent.replace(",", ""))
        assert int(df["verdicts"].sum()) - int(df["cached_verdicts"].sum()) == int(fresh)
        assert int(df["cached_verdicts"].sum()) == int(cached)
        assert int(df["cached_tokens"].sum()) == int(recorded.replace(",", ""))
        status = dict(zip(map(name, df["nodeid"]), df["status"]))
        assert status["test_strict_xpass"] == "failed" and status["test_judge_error_under_xfail"] == "error"
        assert status["test_judge_error_named_by_raises"] == "xfailed" and status["test_xpass"] == "xpassed"
        rows_by_test = df.set_index(df["nodeid"].map(name))
        assert rows_by_test.loc["test_pass", "ref_answer"] == "Paris is the capital of France."
        assert rows_by_test.loc["test_ten_point_template", "max_score"] == 10
        assert "Rate the answer from 1 to 10" in rows_by_test.loc["test_ten_point_template", "template"]
        assert json.loads(rows_by_test.loc["test_ten_point_template", "params"]) == {"max_tokens": 1024, "temperature": 0.3}
    # Markdown and HTML: the same test counts, failed including the strict XPASS and the judge error
    md = (pytester.path / "r.md").read_text("utf-8")
    tests_line = "8 judged tests (2 passed, 3 failed, 2 xfailed, 1 xpassed, as pytest counts them)"
    assert tests_line in md
    assert re.search(r"### \d+\. failed: test_suite.py::test_strict_xpass\n", md)
    assert "| why | XPASS(strict): the test is marked xfail(strict=True), but the verdict met its threshold |" in md
    assert re.search(r"### \d+\. error: test_suite.py::test_judge_error_under_xfail\n", md)
    scales = re.compile(r"mean [\d.]+/5 over 5 scored verdicts \(2 rows without a score\) · mean [\d.]+/10 over 1 "
                        r"scored verdict")
    assert scales.search(md)
    page = (pytester.path / "r.html").read_text("utf-8")
    assert tests_line in page and scales.search(page)
    assert re.search(r"<article class='case st-failed' [^>]*><div class='case-head'><span class='badge'[^>]*>failed"
                     r"</span> <span class='id'>test_suite.py::test_strict_xpass", page)
    # junitxml: its own result per test agrees, and each judged test says pytest's outcome and its verdicts
    cases = junit_cases(pytester.path / "junit.xml")
    for test, outcome in PYTEST_SAYS.items():
        result_in_xml, props = cases[test]
        assert result_in_xml == ("passed" if outcome == "xpassed" else outcome), test
        assert props["judge_outcome"] == [outcome], test
        assert props["judge_assertion"] == [ASSERTION_SAYS[test]], test
    assert "judge_outcome" not in cases["test_not_judged"][1]


@pytest.mark.parametrize("mode", ["immediate", "deferred", "batch"])
def test_every_count_is_pytests_outcome_in_every_mode(pytester: pytest.Pytester, server, mode: str) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = run(pytester, server, f"--judge-mode={mode}", "--junitxml=junit.xml",
                 *(f"--judge-report=r{s}" for s in FORMATS))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    check_every_count(pytester, result, mode)


@pytest.mark.parametrize("mode", ["immediate", "deferred", "batch"])
def test_every_count_is_pytests_outcome_under_xdist(pytester: pytest.Pytester, server, mode: str) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = run(pytester, server, "-n", "2", f"--judge-mode={mode}", "--junitxml=junit.xml",
                 *(f"--judge-report=r{s}" for s in FORMATS), subprocess=True)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    check_every_count(pytester, result, mode)


def test_a_warm_rerun_spends_nothing_and_says_what_the_cached_verdicts_cost(pytester: pytest.Pytester,
                                                                            server) -> None:
    pytester.makepyfile(test_suite=SUITE)
    cold = run(pytester, server, "-k", "test_pass or test_fail or test_ten", "--judge-report=cold.json")
    spent = int(re.search(r"tokens: ([\d,]+) spent this run", cold.stdout.str()).group(1).replace(",", ""))
    assert spent > 0
    cold.stdout.fnmatch_lines(["verdicts: 3 fresh, 0 from cache; fresh calls: 3; report rows: 3;*"])
    warm = run(pytester, server, "-k", "test_pass or test_fail or test_ten", "--judge-report=warm.json")
    warm.stdout.fnmatch_lines([f"verdicts: 0 fresh, 3 from cache; fresh calls: 0; report rows: 3; tokens: 0 spent "
                               f"this run, {spent:,} recorded with cached verdicts*"])
    rows = json.loads((pytester.path / "warm.json").read_text("utf-8"))
    assert sum(r["tokens"] for r in rows) == 0 and sum(r["cached_tokens"] for r in rows) == spent
    assert all(r["cached"] and r["calls"] == 0 for r in rows)


def test_samples_drawn_in_one_call_count_as_one_call(pytester: pytest.Pytester, server) -> None:
    pytester.makepyfile(test_s="""
        from pytest_pai_judge import assert_judge_score

        def test_sampled():
            assert_judge_score("What is the capital of France?", "The capital of France is Paris.", 1,
                               ref_answer="Paris is the capital of France.", samples=3)
    """)
    result = run(pytester, server, "--judge-report=r.json")
    result.stdout.fnmatch_lines(["verdicts: 3 fresh, 0 from cache; fresh calls: 2; report rows: 1;*"])
    (row,) = json.loads((pytester.path / "r.json").read_text("utf-8"))
    assert (row["verdicts"], row["cached_verdicts"], row["calls"], row["confidence"]) == (3, 0, 2, 0.95)


def test_deselected_cases_are_not_run_in_the_drift(pytester: pytest.Pytester, server) -> None:
    pytester.makepyfile(test_suite=SUITE)
    run(pytester, server, "--judge-report=base.csv")
    result = run(pytester, server, "-k", "test_pass or test_fail", "--judge-baseline=base.csv",
                 "--judge-report=now.html", "--judge-report=now.csv")
    result.stdout.fnmatch_lines(["0 down, 0 up, 2 same, 0 new, 0 gone, 6 not run, 0 unscored (score points)"])
    side = pd.read_csv(pytester.path / "now.drift.csv")
    assert sorted(side["status"].value_counts().items()) == [("not run", 6), ("same", 2)]
    assert "0 gone · 6 not run" in (pytester.path / "now.html").read_text("utf-8")
    pytester.makepyfile(test_suite=SUITE.replace("assert_judge_score(Q, BAD, 4, ref_answer=REF)", "pass"))
    gone = run(pytester, server, "-k", "test_pass or test_fail", "--judge-baseline=base.csv")
    gone.stdout.fnmatch_lines(["0 down, 0 up, 1 same, 0 new, 1 gone, 6 not run, 0 unscored (score points)"])


@pytest.mark.parametrize("broken, why", [
    ("usage", "a usage error stopped the run"),
    ("collection", "collection failed"),
])
def test_a_run_that_judged_nothing_leaves_the_reports_as_they_were(pytester: pytest.Pytester, server,
                                                                   broken: str, why: str) -> None:
    pytester.makepyfile(test_suite=SUITE)
    reports = [f"--judge-report=r{s}" for s in (".csv", ".md", ".html")]
    assert run(pytester, server, *reports).ret == pytest.ExitCode.TESTS_FAILED
    before = {s: (pytester.path / f"r{s}").read_bytes() for s in (".csv", ".md", ".html")}
    if broken == "usage":  # a marker argument pytest-pai-judge refuses: rc 4 from inside the session
        pytester.makepyfile(test_bad="import pytest\n\n@pytest.mark.judge(min_scor=3)\ndef test_x():\n    pass\n")
        expected = pytest.ExitCode.USAGE_ERROR
    else:
        pytester.makepyfile(test_bad="import nonexistent_module_for_this_test\n")
        expected = pytest.ExitCode.INTERRUPTED
    result = run(pytester, server, *reports)
    assert result.ret == expected, result.stdout.str()
    assert {s: (pytester.path / f"r{s}").read_bytes() for s in before} == before
    result.stdout.fnmatch_lines([f"pai-judge: nothing was judged ({why}): no report written, r.csv, r.md, r.html "
                                 "left as they were"])


def test_display_width_aligns_chinese_text_in_the_terminal_drift_table() -> None:
    assert display_width("回答开放性问题") == 14 and display_width("scene") == 5
    assert display_width(pad("翻译", 10)) == 10 and pad("翻译", 10) == "翻译      "
    rows = [pad(s, 14) + "|" for s in ("回答开放性问题", "(no scene)", "翻译")]
    assert len({display_width(r) for r in rows}) == 1


def test_the_terminal_drift_table_lines_up_chinese_scenes(pytester: pytest.Pytester, server) -> None:
    pytester.makepyfile(test_zh="""
        import pytest
        from pytest_pai_judge import assert_judge_score

        @pytest.mark.parametrize("scene", ["翻译", "回答开放性问题"])
        def test_zh(scene):
            assert_judge_score("长城主要是在哪个朝代修建的?", "现存的长城主要是在明朝修建的。", 1,
                               ref_answer="现存长城大部分修建于明朝。", scene=scene)
    """)
    run(pytester, server, "--judge-report=base.csv")
    result = run(pytester, server, "--judge-baseline=base.csv")
    lines = [line for line in result.outlines if "→" in line and ("翻译" in line or "开放" in line or "scene" in line)]
    assert len(lines) >= 2, result.stdout.str()
    arrows = {display_width(line[:line.index("→")]) for line in lines if "cases" not in line}
    assert len(arrows) == 1, lines
