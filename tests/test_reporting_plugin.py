"""--judge-report / --judge-baseline / --judge-max-drop through the real plugin flow (embedded local judge)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from pytest_pai_judge.report.files import write_report
from pytest_pai_judge.report.table import COLUMNS, read_report

SUITE = textwrap.dedent("""
    import pytest
    from pytest_pai_judge import assert_judge_not_worse, assert_judge_score

    CASES = [
        ("capital", "What is the capital of France?", "The capital of France is Paris.",
         "Paris is the capital of France."),
        ("wall", "长城主要是在哪个朝代修建的?", "现存的长城主要是在明朝修建的。", "现存长城大部分修建于明朝。"),
        ("boil", "At what temperature does water boil at sea level?", "At 100 degrees Celsius.",
         "Water boils at 100 degrees Celsius at sea level."),
    ]

    @pytest.mark.parametrize("question,answer,ref", [pytest.param(*c[1:], id=c[0]) for c in CASES])
    def test_quality(question, answer, ref):
        assert_judge_score(question, answer, 1, ref_answer=ref)

    def test_two_asserts():
        assert_judge_score("What is 2+2?", "4", 1, ref_answer="4")
        assert_judge_score("What is 3+3?", "6", 1, ref_answer="6")

    def test_pairwise():
        assert_judge_not_worse("How do I reverse a list in Python?",
                               candidate="Use list.reverse() or list[::-1].", baseline="You can reverse it.")

    def test_not_judged():
        pass
""")

QUALITY_IDS = ["test_suite.py::test_quality[capital]", "test_suite.py::test_quality[wall]",
               "test_suite.py::test_quality[boil]"]
BASE_ARGS = ("--judge-cache=off", "-p", "no:cacheprovider")


@pytest.fixture(scope="module", autouse=True)
def parquet_loaded_before_pytester(tmp_path_factory: pytest.TempPathFactory) -> None:
    """pytester's in-process runs drop modules first imported inside them; pyarrow keeps pandas' extension
    types registered, so a second import of pandas' parquet engine would fail. Import it out here once."""
    path = tmp_path_factory.mktemp("warm") / "w.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    pd.read_parquet(path)


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def fn(text: str) -> str:
    """Escape a node id for fnmatch_lines ("[capital]" would be a character class)."""
    return text.replace("[", "[[]")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*BASE_ARGS, *args)


def baseline_from(report: Path, target: Path, bump: dict[str, float]) -> Path:
    """A baseline from an earlier report with some scores raised, so this run reads as a drop of that size."""
    df = read_report(report)
    for nodeid, delta in bump.items():
        df.loc[df["nodeid"] == nodeid, "score"] += delta
    return write_report(df, target)


# --------------------------------------------------------------------------- reports


def test_every_format_in_one_run_and_read_back_with_pandas(suite: pytest.Pytester) -> None:
    out = suite.path / "out"
    result = run(suite, *(f"--judge-report=out/results{s}" for s in (".csv", ".json", ".jsonl", ".parquet", ".md",
                                                                      ".html")))
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*pai-judge report: out?results.csv*", "*pai-judge report: out?results.html*"])
    frames = {
        "csv": pd.read_csv(out / "results.csv"),
        "json": pd.read_json(out / "results.json", orient="records"),
        "jsonl": pd.read_json(out / "results.jsonl", lines=True),
        "parquet": pd.read_parquet(out / "results.parquet"),
    }
    for name, df in frames.items():
        assert list(df.columns) == list(COLUMNS), name
        assert len(df) == 3 + 2 + 1, f"{name}: one row per judged assertion"
        assert set(df["nodeid"]) == set(QUALITY_IDS) | {"test_suite.py::test_two_asserts",
                                                         "test_suite.py::test_pairwise"}
        assert set(df["mode"]) == {"immediate"}
        assert df.loc[df["assertion"] == "score", "score"].between(1, 5).all()
    exact = [read_report(out / f"results{s}") for s in (".csv", ".json", ".jsonl", ".parquet")]
    for other in exact[1:]:
        pd.testing.assert_frame_equal(other.drop(columns="latency_s"), exact[0].drop(columns="latency_s"))
    pair = exact[0][exact[0]["kind"] == "pairwise"].iloc[0]
    assert pair["assertion"] == "not_worse" and pair["winner"] in ("1", "2", "tie")
    assert pair["answer"] == "Use list.reverse() or list[::-1]." and pair["answer2"] == "You can reverse it."
    assert 1 <= pair["score"] <= 5 and 1 <= pair["score2"] <= 5
    single = exact[0][exact[0]["kind"] == "single"]
    assert single["answer2"].isna().all() and single["score2"].isna().all()
    assert "长城" in (out / "results.md").read_text("utf-8")
    page = (out / "results.html").read_text("utf-8")
    assert page.startswith("<!doctype html>") and "test_quality[wall]" in page and "<svg" in page


def test_ini_report_lines_and_the_cli_replacing_them(suite: pytest.Pytester) -> None:
    suite.makeini("[pytest]\njudge_report =\n    reports/a.csv\n    reports/a.jsonl\n")
    assert run(suite, "-k", "capital").ret == 0
    assert sorted(p.name for p in (suite.path / "reports").iterdir()) == ["a.csv", "a.jsonl"]
    assert run(suite, "-k", "capital", "--judge-report=cli.json").ret == 0
    assert (suite.path / "cli.json").exists()
    assert json.loads((suite.path / "cli.json").read_text("utf-8"))[0]["nodeid"] == QUALITY_IDS[0]


def test_no_records_writes_an_empty_report_but_collect_only_writes_nothing(suite: pytest.Pytester) -> None:
    result = run(suite, "-k", "not_judged", "--judge-report=r.csv")
    assert result.ret == 0
    df = pd.read_csv(suite.path / "r.csv")
    assert list(df.columns) == list(COLUMNS) and df.empty, "a first report is written, empty"
    assert run(suite, "--collect-only", "--judge-report=co.csv").ret == 0
    assert not (suite.path / "co.csv").exists()


@pytest.mark.parametrize("args, message", [
    (("--judge-report=out.txt",), "*--judge-report=out.txt: unknown report format '.txt'; the suffix must be one of "
                                  ".csv, .json, .jsonl, .parquet, .md, .html*"),
    (("--judge-report=noext",), "*unknown report format '(no suffix)'*"),
    (("--judge-max-drop=1",), "*--judge-max-drop needs a baseline*--judge-baseline=PATH*"),
    (("--judge-baseline=missing.csv",), "*--judge-baseline: no such file*missing.csv*"),
    (("--judge-baseline=old.html",), "*a baseline must be a machine-readable report (.csv, .json, .jsonl, .parquet)*"),
])
def test_bad_options_are_usage_errors_before_any_judging(suite: pytest.Pytester, args: tuple, message: str) -> None:
    result = run(suite, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "passed" not in result.stdout.str()


def test_bad_ini_values_are_usage_errors(suite: pytest.Pytester) -> None:
    suite.makeini("[pytest]\njudge_report = out.xlsx\n")
    result = run(suite)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*judge_report (ini)=out.xlsx: unknown report format '.xlsx'*"])
    suite.makeini("[pytest]\njudge_baseline = b.csv\njudge_max_drop = lots\n")
    (suite.path / "b.csv").write_text("nodeid,score\n", "utf-8")
    result = run(suite)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*judge_max_drop (ini)='lots': not a number of score points*"])


def test_a_corrupt_baseline_is_a_usage_error(suite: pytest.Pytester) -> None:
    (suite.path / "b.parquet").write_bytes(b"not parquet")
    result = run(suite, "--judge-baseline=b.parquet")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--judge-baseline: cannot read*b.parquet* as a report*"])


# --------------------------------------------------------------------------- drift


@pytest.fixture
def first_run(suite: pytest.Pytester) -> Path:
    assert run(suite, "--judge-report=first.jsonl").ret == 0
    return suite.path / "first.jsonl"


def test_drift_table_in_summary_and_reports_without_a_limit(suite: pytest.Pytester, first_run: Path) -> None:
    baseline_from(first_run, suite.path / "base.csv", {QUALITY_IDS[0]: 3.0, QUALITY_IDS[1]: -1.0})
    result = run(suite, "--judge-baseline=base.csv", "--judge-report=now.md", "--judge-report=now.html",
                 "--judge-report=now.csv")
    assert result.ret == 0, "drift alone never fails a run"
    result.stdout.fnmatch_lines([
        "*pai-judge drift vs base.csv*",
        "1 down, 1 up, 4 same, 0 new, 0 gone, 0 not run, 0 unscored (score points)",
        "*scene*cases*then*now*change*",
        "*(no scene)*6*",
        "*change*then*now*case*",
        f"*-3 * {fn(QUALITY_IDS[0])}",
        f"*+1 * {fn(QUALITY_IDS[1])}",
    ])
    assert "max-drop" not in result.stdout.str()
    md = (suite.path / "now.md").read_text("utf-8")
    assert "## Drift vs baseline `base.csv`" in md and "(4 unchanged cases are not listed)" in md
    drift_rows = md[md.index("## Drift"):md.index("## Score distribution")]
    assert drift_rows.index(f"| {QUALITY_IDS[0]} |") < drift_rows.index(f"| {QUALITY_IDS[1]} |"), "biggest drop first"
    assert "id='drift'" in (suite.path / "now.html").read_text("utf-8")
    side = pd.read_csv(suite.path / "now.drift.csv")
    assert side.set_index("key").loc[QUALITY_IDS[0], "change"] == -3
    pd.testing.assert_frame_equal(read_report(suite.path / "now.csv").drop(columns="latency_s"),
                                  read_report(first_run).drop(columns="latency_s"),
                                  check_like=False), "the report itself stays a plain results table"


def test_max_drop_fails_the_run_only_past_the_limit(suite: pytest.Pytester, first_run: Path) -> None:
    baseline_from(first_run, suite.path / "base.json", {QUALITY_IDS[0]: 2.0, QUALITY_IDS[2]: 1.0})

    at_limit = run(suite, "--judge-baseline=base.json", "--judge-max-drop=2")
    assert at_limit.ret == 0, "a drop of exactly X is allowed"
    at_limit.stdout.fnmatch_lines(["*no case dropped by more than 2 points (--judge-max-drop)*"])

    past = run(suite, "--judge-baseline=base.json", "--judge-max-drop=0.5", "--judge-report=r.html")
    assert past.ret == pytest.ExitCode.TESTS_FAILED
    past.stdout.fnmatch_lines([
        "*FAILED --judge-max-drop=0.5: 2 cases dropped by more than 0.5 points:*",
        f"*dropped by 2: {fn(QUALITY_IDS[0])} (*",
        f"*dropped by 1: {fn(QUALITY_IDS[2])} (*",
        "*6 passed*",
    ])
    assert (suite.path / "r.html").read_text("utf-8").count("beyond max drop") == 2


def test_max_drop_from_ini_relative_to_the_ini_file(suite: pytest.Pytester, first_run: Path) -> None:
    (suite.path / "ci").mkdir()
    baseline_from(first_run, suite.path / "ci" / "base.parquet", {QUALITY_IDS[1]: 1.5})
    suite.makeini("[pytest]\njudge_baseline = ci/base.parquet\njudge_max_drop = 1\n")
    result = run(suite)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"*dropped by 1.5: {fn(QUALITY_IDS[1])}*"])
    assert run(suite, "--judge-max-drop=1.5").ret == 0, "the command line beats the ini file"


def test_subset_runs_and_new_tests_are_not_drops(suite: pytest.Pytester, first_run: Path) -> None:
    df = read_report(first_run)
    df.loc[df["nodeid"] == QUALITY_IDS[0], "nodeid"] = "test_suite.py::test_renamed"
    df.loc[df["nodeid"] == "test_suite.py::test_renamed", "score"] = 5.0
    write_report(df, suite.path / "base.csv")
    result = run(suite, "-k", "capital or wall", "--judge-baseline=base.csv", "--judge-max-drop=0")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["0 down, 0 up, 1 same, 1 new, 0 gone, 5 not run, 0 unscored (score points)"])


def test_a_failing_run_stays_failed_and_reports_still_written(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_more="""
        def test_broken():
            assert False
    """)
    result = run(suite, "--judge-report=r.csv")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert len(pd.read_csv(suite.path / "r.csv")) == 6


def test_an_unwritable_report_is_reported_and_fails_the_run(suite: pytest.Pytester) -> None:
    (suite.path / "blocker").write_text("a file, not a directory", "utf-8")
    result = run(suite, "-k", "capital", "--judge-report=blocker/r.csv", "--judge-report=ok.csv")
    result.stdout.fnmatch_lines(["*pai-judge: could not write report*blocker*r.csv*", "*pai-judge report: ok.csv*"])
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    assert (suite.path / "ok.csv").exists()


# --------------------------------------------------------------------------- cost and xdist


def test_a_run_without_records_or_options_never_imports_pandas(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    pytester.makeconftest("""
        import sys
        def pytest_unconfigure(config):
            print("PANDAS_IMPORTED=%s" % ("pandas" in sys.modules))
    """)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*PANDAS_IMPORTED=False*"])


def test_reports_under_xdist_hold_every_workers_records(suite: pytest.Pytester, first_run: Path) -> None:
    pytest.importorskip("xdist")
    baseline_from(first_run, suite.path / "base.csv", {QUALITY_IDS[2]: 2.0})
    result = suite.runpytest_subprocess(*BASE_ARGS, "-n", "2", "--judge-report=x.csv", "--judge-baseline=base.csv",
                                        "--judge-max-drop=1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines([f"*dropped by 2: {fn(QUALITY_IDS[2])}*"])
    df = pd.read_csv(suite.path / "x.csv")
    assert len(df) == 6 and set(QUALITY_IDS) <= set(df["nodeid"])
    assert not list(suite.path.glob("x.*.csv")) or list(suite.path.glob("x.*.csv")) == [suite.path / "x.drift.csv"]


# --------------------------------------------------------------------------- a baseline sharing no case


def test_a_baseline_sharing_no_case_is_a_loud_warning_not_a_silent_pass(suite: pytest.Pytester,
                                                                        first_run: Path) -> None:
    """E.g. a baseline written from another rootdir: every node id differs, nothing is compared, and
    --judge-max-drop must not read as 'no case dropped'."""
    df = read_report(first_run)
    df["nodeid"] = "examples/" + df["nodeid"]
    df["score"] = 1.0  # everything would look like a big rise if it were compared
    write_report(df, suite.path / "elsewhere.csv")
    result = run(suite, "--judge-baseline=elsewhere.csv", "--judge-max-drop=1", "--judge-report=r.md",
                 "--judge-report=r.html")
    result.stdout.fnmatch_lines([
        "0 down, 0 up, 0 same, 6 new, 0 gone, 6 not run, 0 unscored (score points)",
        "WARNING: the baseline shares no case with this run (6 in the baseline, 6 in this run), so nothing was "
        "compared. Cases match by test node id*",
        "WARNING: --judge-max-drop=1 checked nothing: no case of this run is in the baseline",
    ])
    assert "no case dropped by more than" not in result.stdout.str()
    assert "> **Warning:** the baseline shares no case" in (suite.path / "r.md").read_text("utf-8")
    assert "class='warning'" in (suite.path / "r.html").read_text("utf-8")
    shared = run(suite, "-k", "capital", "--judge-baseline=first.jsonl", "--judge-max-drop=1")
    assert "WARNING" not in shared.stdout.str(), "a subset run that shares a case is not warned about"
    shared.stdout.fnmatch_lines(["*no case dropped by more than 1 point (--judge-max-drop)*"])


# --------------------------------------------------------------------------- xfail-marked tests


class RecordNotMarkedXfail(AssertionError):
    """The run's record of an xfail-marked test does not carry ``xfail=True`` (set where records are added)."""


XFAIL_SUITE = textwrap.dedent("""
    import pytest
    from pytest_pai_judge import assert_judge_score

    def test_good():
        assert_judge_score("What is the capital of France?", "The capital of France is Paris.", 1,
                           ref_answer="Paris is the capital of France.")

    @pytest.mark.xfail(reason="known wrong answer", strict=True)
    def test_known_bad():
        assert_judge_score("Who was the first person on the moon?", "Yuri Gagarin, in 1961.", 5,
                           ref_answer="Neil Armstrong was the first person to walk on the moon, in 1969.")
""")


def test_a_strict_xfail_test_is_xfailed_in_the_reports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_xf=XFAIL_SUITE)
    result = run(pytester, "--judge-report=r.csv", "--judge-report=r.md", "--judge-report=r.html")
    result.assert_outcomes(passed=1, xfailed=1)
    df = read_report(pytester.path / "r.csv").set_index("nodeid")
    assert df.loc["test_xf.py::test_known_bad", "passed"] == False  # noqa: E712 - the verdict did fail
    if not df.loc["test_xf.py::test_known_bad", "xfail"]:
        raise RecordNotMarkedXfail("the xfail test's record has xfail=False")
    assert df.loc["test_xf.py::test_good", "xfail"] == False  # noqa: E712
    md = (pytester.path / "r.md").read_text("utf-8")
    assert "**Judge checks PASSED** — 1 of 1 cases passed · 1 xfailed as expected" in md
    assert "| xfailed | test_xf.py::test_known_bad |" in md
    result.stdout.fnmatch_lines(["2 judged tests (as pytest counts them): 1 passed, 1 xfailed",
                                 "2 judged assertions: 1 met, 1 not met", "*xfail ?/5 (min 5)  test_xf.py::test_known_bad"])
    page = (pytester.path / "r.html").read_text("utf-8")
    assert "<b>Judge checks PASSED</b>" in page and "row-xfailed" in page


def test_pairwise_rows_keep_both_answers_criteria(pytester: pytest.Pytester) -> None:
    """A pairwise row carries answer 2's per-criterion scores (``criteria2``) in every format, and the
    pages show them beside answer 1's; other rows have none."""
    pytester.makepyfile(test_pair=textwrap.dedent("""
        from pytest_pai_judge import assert_judge_prefers, assert_judge_score

        def test_pair():
            assert_judge_prefers("What is the capital of France?", "Lyon is the capital.",
                                 "Paris is the capital of France.", ref_answer="Paris is the capital of France.")

        def test_single():
            assert_judge_score("What is the capital of France?", "Paris.", 1)
    """))
    reports = [f"--judge-report=r{s}" for s in (".csv", ".json", ".parquet", ".html", ".md")]
    pytester.runpytest("-p", "no:cacheprovider", *reports).assert_outcomes(passed=1, failed=1)
    for suffix in (".csv", ".json", ".parquet"):
        df = read_report(pytester.path / f"r{suffix}").set_index("kind")
        pair, single = df.loc["pairwise", "criteria2"], df.loc["single", "criteria2"]
        assert isinstance(pair, dict) and pair and set(pair) == set(df.loc["pairwise", "criteria"]), suffix
        assert pair != df.loc["pairwise", "criteria"], suffix  # the worse answer scored differently
        assert single is None, suffix
    for page in ("r.html", "r.md"):  # the failing pairwise case is shown in full, with both answers' criteria
        text = (pytester.path / page).read_text("utf-8")
        assert "test_pair.py::test_pair" in text and "criteri" in text.lower(), page
        assert "not recorded" not in text, page
