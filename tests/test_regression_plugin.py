"""--judge-regression through the real plugin flow: a baseline run, then runs judged by the embedded local server.

The lexical engine scores by overlap with ``ref_answer``: the "worse" answers overlap their reference
less, so 7 of the 10 cases lose exactly 1 point (5 -> 4) and 3 stay at 5. No single case drops by
more than 1 (``--judge-max-drop=1`` holds), but the suite's mean fell by 0.7 points.
"""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET

import pytest

CASES = [
    ("france", "What is the capital of France?", "Paris is the capital city of France.",
     "The capital city of France is Paris, on the Seine."),
    ("boil", "At what temperature does water boil at sea level?", "Water boils at 100 degrees Celsius at sea level.",
     "Water boils at 100 degrees at sea level, roughly."),
    ("hamlet", "Who wrote Hamlet?", "William Shakespeare wrote the tragedy Hamlet around 1600.",
     "Shakespeare wrote Hamlet, a famous play."),
    ("planet", "What is the largest planet in the solar system?", "Jupiter is the largest planet in the solar system.",
     "Jupiter is the largest planet, by far."),
    ("continents", "How many continents are there?", "There are seven continents on Earth.",
     "Seven continents exist, counting Antarctica."),
    ("plants", "What gas do plants absorb?", "Plants take in carbon dioxide from the air.",
     "Plants take in carbon dioxide, mostly by leaves."),
    ("gold", "What is the chemical symbol for gold?", "The chemical symbol for gold is Au.",
     "Gold has the chemical symbol Au, from Latin aurum."),
    ("spider", "How many legs does a spider have?", "A spider has eight legs.",
     "Spiders have eight jointed legs and two body parts."),
    ("light", "What is the speed of light?", "Light travels at about 300000 kilometres per second in vacuum.",
     "Light is about 300000 kilometres per second fast."),
    ("mona", "Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa.",
     "The Mona Lisa was painted by Leonardo, an Italian."),
]
"""(id, question, reference = the good answer, a slightly worse answer)."""
BASE_ARGS = ("--judge-cache=off", "-p", "no:cacheprovider")
LIMIT = "--judge-regression=0.2@95%"


def suite_text(worse: bool) -> str:
    """Every case passes its threshold of 1 either way: only the regression can fail the run."""
    return textwrap.dedent(f"""
        import pytest
        from pytest_pai_judge import assert_judge_score

        CASES = {CASES!r}
        WORSE = {worse!r}

        @pytest.mark.parametrize("question,good,bad", [pytest.param(*c[1:], id=c[0]) for c in CASES])
        def test_answer(question, good, bad):
            assert_judge_score(question, bad if WORSE else good, 1, ref_answer=good)
    """)


@pytest.fixture
def baselined(pytester: pytest.Pytester) -> pytest.Pytester:
    """A suite whose good answers were judged once, into ``base.jsonl``."""
    pytester.makepyfile(test_suite=suite_text(worse=False))
    first = pytester.runpytest(*BASE_ARGS, "--judge-report=base.jsonl")
    assert first.ret == 0, first.stdout.str()
    return pytester


def test_answers_slightly_worse_everywhere_fail_the_regression_though_no_case_trips_max_drop(
        baselined: pytest.Pytester) -> None:
    baselined.makepyfile(test_suite=suite_text(worse=True))
    result = baselined.runpytest(*BASE_ARGS, "--judge-baseline=base.jsonl", "--judge-max-drop=1", LIMIT,
                                 "--judge-report=now.csv", "--judge-report=now.md", "--judge-report=now.html",
                                 "--junitxml=junit.xml")
    out = result.stdout.str()
    assert result.ret == 1, out
    result.assert_outcomes(passed=10)
    result.stdout.fnmatch_lines([
        "*no case dropped by more than 1 point (--judge-max-drop)*",
        "FAILED --judge-regression=0.2@95%: mean dropped by more than 0.2 points: mean change -0.7 points of 5 "
        "(95% upper bound -0.4, one-sided; 90% interval -0.9 to -0.4); 10 pairs: 0 wins / 7 losses / 3 ties; "
        "Wilcoxon p 0.00781 (one-sided)",
    ])
    assert out.count("--judge-regression=0.2@95%") == 1, "one regression line"

    side = json.loads((baselined.path / "now.regression.json").read_text("utf-8"))
    assert side["status"] == "failed" and side["pairs"] == 10 and (side["wins"], side["losses"]) == (0, 7)
    assert side["mean_change"] == pytest.approx(-0.7) and side["upper_bound"] < -0.2
    assert sorted(c["change"] for c in side["cases"]) == [-1.0] * 7 + [0.0] * 3

    md = (baselined.path / "now.md").read_text("utf-8")
    verdict = md.splitlines()[2]
    assert verdict.startswith("**Judge checks FAILED** — the mean score dropped by more than 0.2 points"), verdict
    assert "**Paired regression vs baseline:** FAILED --judge-regression=0.2@95%" in md
    page = (baselined.path / "now.html").read_text("utf-8")
    assert page.index("id='verdict'") < page.index("id='regression' class='limit bad'") < page.index("id='filter'")

    suite = ET.parse(baselined.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["judge_regression"] == "failed" and props["judge_regression_pairs"] == "10"
    assert float(props["judge_regression_mean_change"]) == pytest.approx(-0.7)
    assert props["judge_regression_wins_losses_ties"] == "0/7/3"


def test_an_unchanged_run_holds(baselined: pytest.Pytester) -> None:
    result = baselined.runpytest(*BASE_ARGS, "--judge-baseline=base.jsonl", LIMIT, "--judge-max-drop=1")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([
        "--judge-regression=0.2@95% held: mean change ±0 points of 5 (95% upper bound ±0, one-sided; 90% interval "
        "±0 to ±0); 10 pairs: 0 wins / 0 losses / 10 ties; Wilcoxon p 1 (one-sided)",
    ])


def test_too_few_matched_cases_are_reported_and_do_not_decide_the_exit_status(baselined: pytest.Pytester) -> None:
    baselined.makepyfile(test_suite=suite_text(worse=True))
    result = baselined.runpytest(*BASE_ARGS, "-k", "hamlet or planet or spider", "--judge-baseline=base.jsonl",
                                 LIMIT, "--judge-report=few.json")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([
        "--judge-regression=0.2@95% not tested: not enough matched cases (3 pairs, at least 5 needed)"])
    side = json.loads((baselined.path / "few.regression.json").read_text("utf-8"))
    assert side["status"] == "too few" and side["pairs"] == 3 and side["unmatched"]["not run"] == 7


@pytest.mark.parametrize("mode", [("-n", "2"), ("--judge-mode=deferred",), ("--judge-mode=batch", "-n", "2")],
                         ids=["xdist", "deferred", "batch-xdist"])
def test_a_regression_is_computed_once_by_the_controller_in_every_mode(baselined: pytest.Pytester,
                                                                        mode: tuple[str, ...]) -> None:
    baselined.makepyfile(test_suite=suite_text(worse=True))
    result = baselined.runpytest_subprocess(*BASE_ARGS, *mode, "--judge-baseline=base.jsonl", LIMIT,
                                            "--judge-report=x.csv")
    assert result.ret == 1, result.stdout.str()
    assert result.stdout.str().count("FAILED --judge-regression=0.2@95%: mean dropped by more than 0.2 points") == 1
    assert json.loads((baselined.path / "x.regression.json").read_text("utf-8"))["pairs"] == 10


@pytest.mark.parametrize("args, ini, message", [
    ((LIMIT,), "", "*--judge-regression needs a baseline to compare with: give --judge-baseline=PATH*"),
    (("--judge-baseline=base.jsonl", "--judge-regression=a lot"), "",
     "*--judge-regression=a lot: expected POINTS[[]@CONF], e.g. 0.2@95%*"),
    (("--judge-baseline=base.jsonl", "--judge-regression=0.2@95"), "", "*write it as 95%*"),
    (("--judge-baseline=base.jsonl",), "judge_regression = 0.2@150%",
     "*judge_regression (ini)=0.2@150%: the confidence must be above 50% and below 100%*e.g. 0.2@95%*"),
])
def test_bad_regression_options_are_usage_errors_before_any_judging(pytester: pytest.Pytester, args: tuple,
                                                                     ini: str, message: str) -> None:
    pytester.makepyfile(test_suite=suite_text(worse=False))
    (pytester.path / "base.jsonl").write_text("", "utf-8")
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest(*BASE_ARGS, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "passed" not in result.stdout.str()
