"""Each of the plugin's own hooks, implemented by a conftest plugin in a real run (embedded local judge)."""

from __future__ import annotations

import inspect
import json
import textwrap

import pytest

from pytest_pai_judge import hookspecs

SUITE = textwrap.dedent("""
    from pytest_pai_judge import assert_judge_score

    def test_capital():
        assert_judge_score("What is the capital of France?", "The capital of France is Paris.", 1,
                           ref_answer="Paris is the capital of France.")

    def test_wall():
        assert_judge_score("长城主要是在哪个朝代修建的?", "明朝。", 1, ref_answer="现存长城大部分修建于明朝。")
""")
ARGS = ("--judge-cache=off", "-p", "no:cacheprovider")


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_every_hookspec_is_documented_with_an_example() -> None:
    names = [n for n in dir(hookspecs) if n.startswith("pytest_judge_")]
    assert sorted(names) == ["pytest_judge_parse_reply", "pytest_judge_request", "pytest_judge_results",
                             "pytest_judge_verdict"]
    for name in names:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Example" in doc and f"def {name}(" in doc, name
    assert hookspecs.pytest_judge_parse_reply.pytest_spec["firstresult"] is True  # type: ignore[attr-defined]


def test_request_hook_amends_before_sending(suite: pytest.Pytester) -> None:
    suite.makeconftest("""
        def pytest_judge_request(request, item):
            request.model = "pai-judge-plus"
            request.fields["question"] = request.fields["question"] + " (amended by " + item.name + ")"
    """)
    result = suite.runpytest(*ARGS, "--judge-report=r.jsonl")
    assert result.ret == 0
    rows = [json.loads(line) for line in (suite.path / "r.jsonl").read_text("utf-8").splitlines()]
    assert {r["model"] for r in rows} == {"pai-judge-plus"}
    assert sorted(r["question"] for r in rows) == ["What is the capital of France? (amended by test_capital)",
                                                   "长城主要是在哪个朝代修建的? (amended by test_wall)"]


def test_parse_reply_hook_first_result_wins_over_the_builtin_parser(suite: pytest.Pytester) -> None:
    suite.makeconftest("""
        import pytest
        from pytest_pai_judge.verdict import Verdict

        SEEN = []

        def pytest_judge_parse_reply(text, mode):
            SEEN.append(mode)
            if "Paris" not in text and "France" not in text:
                return None  # let the built-in parser read the other reply
            return Verdict(mode=mode, score=1.0, max_score=5, criteria=(), winner=None, score1=None,
                           score2=None, reasons="custom parser: " + str(len(text)), raw=text)

        @pytest.hookimpl(trylast=True)
        def pytest_judge_results(df, config):
            print("MODES", sorted(set(SEEN)))
            print("SCORES", dict(zip(df["nodeid"], df["score"])))
    """)
    result = suite.runpytest(*ARGS, "-s", "--judge-report=r.csv")
    assert result.ret == 0
    out = result.stdout.str()
    assert "MODES ['single']" in out
    assert "SCORES {'test_suite.py::test_capital': 1.0, 'test_suite.py::test_wall': " in out
    import pandas as pd

    reasons = pd.read_csv(suite.path / "r.csv").set_index("nodeid")["reasons"]
    assert reasons["test_suite.py::test_capital"].startswith("custom parser: ")
    assert not reasons["test_suite.py::test_wall"].startswith("custom parser"), "None passed it on to the built-in parser"


def test_verdict_hook_observes_every_verdict(suite: pytest.Pytester) -> None:
    suite.makeconftest("""
        SEEN = []

        def pytest_judge_verdict(verdict, item):
            SEEN.append((item.name, verdict.mode, verdict.score is not None))

        def pytest_unconfigure(config):
            print("SEEN", sorted(SEEN))
    """)
    result = suite.runpytest(*ARGS, "-s")
    assert result.ret == 0
    assert "SEEN [('test_capital', 'single', True), ('test_wall', 'single', True)]" in result.stdout.str()


def test_results_hook_gets_the_final_frame_once_and_not_when_nothing_was_judged(suite: pytest.Pytester) -> None:
    suite.makeconftest("""
        CALLS = []

        def pytest_judge_results(df, config):
            CALLS.append(df)
            df[["nodeid", "score"]].to_csv(config.rootpath / "pushed.csv", index=False)

        def pytest_unconfigure(config):
            print("CALLS", len(CALLS), [list(df.columns)[:3] for df in CALLS], [len(df) for df in CALLS])
    """)
    result = suite.runpytest(*ARGS, "-s")
    assert result.ret == 0
    assert "CALLS 1 [['nodeid', 'mode', 'kind']] [2]" in result.stdout.str()
    assert (suite.path / "pushed.csv").read_text("utf-8").startswith("nodeid,score\n")
    suite.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = suite.runpytest(*ARGS, "-s", "test_plain.py")
    assert "CALLS 0 [] []" in result.stdout.str()


def test_hooks_run_in_deferred_mode_too(suite: pytest.Pytester) -> None:
    """Verdicts settle after the tests ran; the frame still holds them and says the mode."""
    suite.makeconftest("""
        def pytest_judge_results(df, config):
            print("RESULT", sorted(set(df["mode"])), len(df), df["score"].notna().all())
    """)
    result = suite.runpytest(*ARGS, "-s", "--judge-mode=deferred")
    assert result.ret == 0, result.stdout.str()
    assert "RESULT ['deferred'] 2 True" in result.stdout.str()
