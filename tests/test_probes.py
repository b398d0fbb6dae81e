"""Bias probes through the plugin (real runs against a local judge server), and their effect sizes."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_pai_judge.probes import PADDING_EN, PADDING_ZH, cliffs_delta, padding_for

TESTS_DIR = str(Path(__file__).parent)
HEADER = "from pytest_pai_judge import assert_judge_unbiased\n"
CASE = '"What is the capital of France?", "Paris is the capital of France.", ref_answer="Paris is the capital of France."'


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "--judge-cache=off", *args)


def test_cliffs_delta_is_the_share_of_pairs_above_minus_below() -> None:
    a, b = [3, 4, 4, 5, 2], [2, 3, 3, 4, 1, 3]
    brute = sum((x > y) - (x < y) for x in a for y in b) / (len(a) * len(b))
    assert cliffs_delta(a, b) == pytest.approx(brute)
    assert cliffs_delta([5, 5], [1, 1]) == 1 and cliffs_delta([1, 1], [5, 5]) == -1


def test_padding_speaks_the_cases_language() -> None:
    assert padding_for("中国的首都是哪里?", "北京") == PADDING_ZH
    assert padding_for("What is the capital?", "Paris") == PADDING_EN


def test_a_fair_judge_passes_every_probe(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HEADER + textwrap.dedent(f"""
        def test_fair(judge):
            probes = assert_judge_unbiased({CASE}, temperature=0)
            assert probes["position"].value == 0 and probes["consistency"].value == 0, probes.text()
            assert probes["verbosity"].value <= 0, probes.text()
            assert probes["position"].n == 5  # five samples, each in both orders
    """))
    run(pytester).assert_outcomes(passed=1)


def test_a_position_biased_judge_fails_the_position_probe(pytester: pytest.Pytester, make_judge_server) -> None:
    sys.path.insert(0, TESTS_DIR)
    server = make_judge_server(engine="judge_engines:FirstAnswerEngine")
    pytester.makepyfile(HEADER + textwrap.dedent("""
        def test_position():
            assert_judge_unbiased("q?", "answer a", other="answer b", probes=["position"], samples=3)
    """))
    result = run(pytester, "--judge-base-url", server.url)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*JudgeAssertionError: the judge shows a bias: position (flip rate (the verdict "
                                 "follows the position) 1.00 > 0.2)*",
                                 "*position: flip rate (the verdict follows the position) 1.00 * (n=3; position 1 "
                                 "won 6 of 6 orders); limit 0.2 -- EXCEEDED*"])


def test_a_length_loving_judge_fails_the_verbosity_probe(pytester: pytest.Pytester, make_judge_server) -> None:
    sys.path.insert(0, TESTS_DIR)
    server = make_judge_server(engine="judge_engines:LengthLovingEngine")
    padded = min(5, 1 + len("4" + PADDING_EN) // 80)  # what that engine gives the padded answer; "4" gets 1
    pytester.makepyfile(HEADER + textwrap.dedent(f"""
        def test_verbosity(judge):
            values = judge.probes("What is 2+2?", "4", probes=["verbosity"], samples=2)
            assert values["verbosity"].value == {padded - 1} and not values["verbosity"].within  # reported, not raised
            assert_judge_unbiased("What is 2+2?", "4", probes=["verbosity"], samples=2)
    """))
    result = run(pytester, "--judge-base-url", server.url)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*the judge shows a bias: verbosity (score gained by empty padding (points) "
                                 f"{padded - 1:.2f} > 0.5)*", f"*Cliff's delta +1.00; mean 1.00 -> {padded:.2f}*"])


def test_a_sampling_judge_spreads_and_the_consistency_probe_says_how_much(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HEADER + textwrap.dedent(f"""
        def test_noisy():
            assert_judge_unbiased({CASE}, probes=["consistency"], samples=12, temperature=1.5, max_spread=0.2)
    """))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*consistency (spread of one request's samples (sd, points) * > 0.2)*",
                                 "*samples gave*"])


def test_bad_probe_arguments_are_refused_before_judging(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HEADER + textwrap.dedent("""
        import pytest

        def test_unknown():
            with pytest.raises(ValueError, match="unknown probe"):
                assert_judge_unbiased("q?", "a", probes=["length"])

        def test_one_sample():
            with pytest.raises(ValueError, match="consistency probe needs samples >= 2"):
                assert_judge_unbiased("q?", "a", samples=1)
    """))
    run(pytester).assert_outcomes(passed=2)


@pytest.mark.parametrize("mode", ["deferred", "batch"])
def test_the_same_effects_in_every_mode(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(HEADER + textwrap.dedent("""
        def test_probes():
            assert_judge_unbiased("中国的首都是哪里?", "中国的首都是北京。", other="上海。", temperature=0.7,
                                  max_flip_rate=1, max_verbosity_gain=5, max_spread=5)
    """))
    effects = {}
    for run_mode in ("immediate", mode):
        run(pytester, f"--judge-mode={run_mode}", f"--judge-report={run_mode}.json").assert_outcomes(passed=1)
        check, = json.loads((pytester.path / f"{run_mode}.calibration.json").read_text("utf-8"))["checks"]
        effects[run_mode] = check["effects"]
    assert effects[mode] == effects["immediate"]
    assert set(effects[mode]) == {"position", "verbosity", "consistency"}
