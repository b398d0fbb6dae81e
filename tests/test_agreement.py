"""Agreement with human labels: the figures, checked against the libraries' documented examples."""

from __future__ import annotations

import random

import pytest

from pytest_pai_judge import agreement
from pytest_pai_judge.agreement import pairwise_agreement, score_agreement


def test_spearman_is_scipys_documented_example() -> None:
    """scipy.stats.spearmanr's docstring: spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) -> 0.8207826816681233."""
    assert agreement._spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)


def test_kappa_is_sklearns_quadratic_weighted_kappa() -> None:
    from sklearn.metrics import cohen_kappa_score

    human = [1, 2, 3, 4, 5, 5, 4, 3, 2, 1, 3, 4]
    judge = [1, 3, 3, 4, 4, 5, 5, 2, 2, 2, 3, 4]
    result = score_agreement(human, judge)
    assert result.figures["kappa"].value == pytest.approx(cohen_kappa_score(human, judge, weights="quadratic"))
    # sklearn's documented (unweighted) example, through the same function
    assert cohen_kappa_score(["negative", "positive", "negative", "neutral", "positive"],
                             ["negative", "positive", "negative", "neutral", "negative"]) == pytest.approx(0.6875)


def test_labels_equal_to_the_judge_give_kappa_one_and_shuffled_labels_about_zero() -> None:
    rng = random.Random(3)
    judge = [rng.randint(1, 5) for _ in range(400)]
    same = score_agreement(list(judge), judge)
    assert same.figures["kappa"].value == 1 and same.figures["exact"].value == 1
    assert same.figures["kappa"].low == 1 and same.figures["spearman"].value == pytest.approx(1)
    shuffled = list(judge)
    rng.shuffle(shuffled)
    noise = score_agreement(shuffled, judge).figures["kappa"]
    assert abs(noise.value) < 0.15 and noise.low < 0 < noise.high


def test_a_missing_verdict_is_a_disagreement_not_a_gap() -> None:
    full = score_agreement([5, 5, 1, 1], [5, 5, 1, 1])
    gap = score_agreement([5, 5, 1, 1], [5, None, 1, 1])
    assert gap.figures["exact"].value == 0.75 and gap.figures["exact"].n == 4
    assert gap.figures["kappa"].value < full.figures["kappa"].value
    assert gap.confusion[(5, 0)] == 1


def test_the_judge_as_a_pass_fail_classifier() -> None:
    result = score_agreement([5, 4, 4, 2, 1, 2], [5, 4, 2, 2, 4, 1], threshold=4)
    tpr, tnr = result.figures["tpr"], result.figures["tnr"]
    assert (tpr.value, tpr.n) == (pytest.approx(2 / 3), 3) and (tnr.value, tnr.n) == (pytest.approx(2 / 3), 3)
    assert 0 < tpr.low < tpr.value < tpr.high < 1


def test_pairwise_agreement_and_position_consistency() -> None:
    figures = pairwise_agreement(["1", "2", "tie", "1"], ["1", "1", "tie", None], [True, False, True, True])
    assert figures["agreement"].value == 0.5 and figures["position_consistency"].value == 0.75


def test_the_intervals_are_reproducible() -> None:
    human, judge = [1, 2, 3, 4, 5, 3, 4, 2], [2, 2, 3, 5, 4, 3, 3, 1]
    first, again = score_agreement(human, judge), score_agreement(human, judge)
    assert [f.to_dict() for f in first.figures.values()] == [f.to_dict() for f in again.figures.values()]


def test_half_point_labels_are_kept_where_a_figure_can_keep_them() -> None:
    """A median of two raters is 3.5: exact / within-one / tpr read it as it is; kappa and the confusion matrix
    (categories) count it as 4, half up."""
    result = score_agreement([3.5, 2.5, 4], [4, 2, 4], threshold=4)
    figures = result.figures
    assert figures["exact"].value == pytest.approx(1 / 3) and figures["within_one"].value == 1
    assert figures["tpr"].n == 1 and figures["tnr"].n == 2  # 3.5 is below the pass mark of 4: a human fail
    assert result.confusion == {(4, 4): 2, (3, 2): 1}
    assert agreement.whole(2.5) == 3 and agreement.whole(3.49) == 3
