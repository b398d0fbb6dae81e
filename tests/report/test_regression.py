"""report/regression.py: the paired regression test's figures, checked against documented examples and edge cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from report_records import rec
from scipy import stats

from pytest_pai_judge.report.drift import compute_drift
from pytest_pai_judge.report.files import write_report
from pytest_pai_judge.report.page_facts import run_verdict
from pytest_pai_judge.report.regression import (
    MIN_PAIRS,
    SEED,
    compute_regression,
    mean_interval,
    parse_limit,
    wilcoxon_less,
)
from pytest_pai_judge.report.table import records_to_frame

DARWIN = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]
"""Height differences of cross- and self-fertilized corn (Darwin, via Fisher): scipy's ``wilcoxon`` example."""


def frames(then: dict[str, tuple[float | None, int]], now: dict[str, tuple[float | None, int]]):
    """(baseline, current) tables from ``{test: (score, max_score)}``; a None score is a judge error."""
    def table(cases: dict[str, tuple[float | None, int]]):
        return records_to_frame([rec(f"t.py::test_{k}", s, max_score=m, threshold=1.0, passed=s is not None, error=None if s is not None else "JudgeError")
                                 for k, (s, m) in cases.items()])
    base, cur = table(then), table(now)
    return base, cur, compute_drift(base, cur)[0]


def test_the_signed_rank_p_value_is_scipys_documented_one() -> None:
    """scipy's docstring: wilcoxon(d, alternative='greater') gives p = 0.0206298828125 (exact); our
    one-sided "went down" test of the negated differences is that same test."""
    assert wilcoxon_less([-x for x in DARWIN]) == pytest.approx(0.0206298828125, abs=1e-12)
    res = stats.wilcoxon(DARWIN, zero_method="zsplit")
    assert (res.statistic, res.pvalue) == (24.0, pytest.approx(0.041259765625)), "zsplit without zeros: the doc's figures"


def test_the_bootstrap_interval_brackets_the_mean_and_its_upper_end_is_the_one_sided_bound() -> None:
    d = np.array(DARWIN, dtype=float)
    low, high, method = mean_interval(d, 0.95)
    assert method == "BCa"
    assert d.mean() == pytest.approx(20.9333333) and low < d.mean() < high
    assert mean_interval(d, 0.95) == (low, high, method), "a fixed seed: the same figures every run"
    assert 0 < low < 10 and 25 < high < 40, (low, high)  # scipy 1.17: 2.12 and 34.07
    one_sided = stats.bootstrap((d,), np.mean, confidence_level=0.95, alternative="less",
                                random_state=np.random.default_rng(SEED)).confidence_interval
    assert np.isneginf(one_sided.low) and one_sided.high == pytest.approx(high)
    assert mean_interval(d, 0.99)[1] > high, "more confidence, a wider bound"


def test_all_zero_changes_are_a_degenerate_interval_at_zero() -> None:
    assert mean_interval(np.zeros(8), 0.95) == (0.0, 0.0, "degenerate (all changes equal)")
    assert wilcoxon_less(np.zeros(8)) == 1.0


@pytest.mark.parametrize("text, points, confidence", [
    ("0.2@95%", 0.2, 0.95), ("0.2@0.95", 0.2, 0.95), ("0.2", 0.2, 0.95), (" 0.5 @ 99 % ", 0.5, 0.99), ("0", 0.0, 0.95),
])
def test_limit_grammar(text: str, points: float, confidence: float) -> None:
    limit = parse_limit(text)
    assert (limit.points, limit.confidence) == (points, pytest.approx(confidence))


@pytest.mark.parametrize("text, message", [
    ("lots", "expected POINTS[@CONF], e.g. 0.2@95%"), ("-0.2@95%", "expected POINTS"), ("0.2@95", "write it as 95%"),
    ("0.2@40%", "above 50% and below 100%"), ("0.2@100%", "below 100%"), ("6", "more than the whole 5-point scale"),
])
def test_bad_limits_say_what_is_wrong_with_an_example(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="e.g. 0.2@95%") as err:
        parse_limit(text)
    assert message in str(err.value)


def test_scores_are_put_on_one_5_point_scale_before_the_changes() -> None:
    """A /10 case that lost 2 raw points lost 1 point of 5; a /5 one that gained 1 gained 1."""
    then = {f"ten{i}": (8.0, 10) for i in range(4)} | {f"five{i}": (3.0, 5) for i in range(3)}
    now = {f"ten{i}": (6.0, 10) for i in range(4)} | {f"five{i}": (4.0, 5) for i in range(3)}
    base, cur, per_case = frames(then, now)
    r = compute_regression(parse_limit("0.2"), per_case, base, cur)
    changes = {c["key"].split("_")[-1]: c["change"] for c in r.cases}
    assert set(changes.values()) == {-1.0, 1.0} and changes["ten0"] == -1.0 and changes["five0"] == 1.0
    assert r.mean_change == pytest.approx((4 * -1 + 3 * 1) / 7)
    assert (r.wins, r.losses, r.ties, r.pairs) == (3, 4, 0, 7) and r.status == "held"


def test_a_hand_made_baseline_without_max_score_takes_the_runs_scale() -> None:
    base, cur, per_case = frames({f"c{i}": (8.0, 10) for i in range(5)}, {f"c{i}": (8.0, 10) for i in range(5)})
    base = base.assign(max_score=None)
    r = compute_regression(parse_limit("0.2"), compute_drift(base, cur)[0], base, cur)
    assert r.mean_change == 0 and (r.low, r.high) == (0, 0) and r.status == "held"


def test_a_score_missing_now_counts_at_the_bottom_of_its_scale_and_unscored_baselines_are_left_out() -> None:
    then = {f"c{i}": (4.0, 5) for i in range(6)} | {"was_error": (None, 5), "both_error": (None, 5)}
    now = {f"c{i}": (4.0, 5) for i in range(5)} | {"c5": (None, 5), "was_error": (5.0, 5), "both_error": (None, 5),
                                                     "new": (5.0, 5)}
    base, cur, per_case = frames(then, now)
    r = compute_regression(parse_limit("0.2"), per_case, base, cur)
    assert r.pairs == 6 and r.lost == 1 and r.losses == 1 and r.ties == 5
    lost = next(c for c in r.cases if c["key"].endswith("c5"))
    assert (lost["then"], lost["now"], lost["change"], lost["counted"]) == (4.0, 1.0, -3.0, "no score now")
    assert r.left_out == {"unscored in the baseline": 1, "unscored in both runs": 1}
    assert r.unmatched["new"] == 1
    assert "1 with no score now counted at the bottom of the scale" in r.line()
    assert r.mean_change == pytest.approx(-0.5)


def test_too_few_pairs_is_said_and_neither_holds_nor_fails() -> None:
    cases = {f"c{i}": (5.0, 5) for i in range(MIN_PAIRS - 1)}
    base, cur, per_case = frames(cases, {k: (1.0, 5) for k in cases})
    r = compute_regression(parse_limit("0.2@95%"), per_case, base, cur)
    assert r.status == "too few" and not r.failed and r.mean_change is None
    assert r.line() == "--judge-regression=0.2@95% not tested: not enough matched cases (4 pairs, at least 5 needed)"
    verdict = run_verdict(cur, (per_case, per_case), regression=r)
    assert r.reason() in verdict.notes and r.reason() not in verdict.problems


def test_a_failed_regression_is_a_problem_on_the_pages_and_in_the_sidecar(tmp_path) -> None:
    then = {f"c{i}": (5.0, 5) for i in range(10)}
    now = {f"c{i}": (4.0 if i < 7 else 5.0, 5) for i in range(10)}
    base, cur, per_case = frames(then, now)
    r = compute_regression(parse_limit("0.2@95%"), per_case, base, cur)
    assert r.status == "failed" and r.mean_change == pytest.approx(-0.7) and r.high < -0.2
    assert (r.wins, r.losses, r.ties) == (0, 7, 3)
    assert r.wilcoxon_p is not None and r.wilcoxon_p < 0.01
    verdict = run_verdict(cur, (per_case, per_case), regression=r)
    assert not verdict.passed and verdict.problems == [
        "the mean score dropped by more than 0.2 points (--judge-regression=0.2@95%)"]
    write_report(cur, tmp_path / "r.csv", compute_drift(base, cur), regression=r)
    side = json.loads((tmp_path / "r.regression.json").read_text("utf-8"))
    assert side["status"] == "failed" and side["pairs"] == 10 and side["upper_bound"] == pytest.approx(r.high)
    assert side["interval_level"] == pytest.approx(0.9) and len(side["cases"]) == 10
    write_report(cur, tmp_path / "r.md", compute_drift(base, cur), regression=r)
    md = (tmp_path / "r.md").read_text("utf-8")
    assert md.index("**Paired regression vs baseline:** FAILED --judge-regression=0.2@95%") < md.index("## Needs")
    write_report(cur, tmp_path / "r.html", compute_drift(base, cur), regression=r)
    assert "id='regression' class='limit bad'" in (tmp_path / "r.html").read_text("utf-8")
