"""How well the judge agrees with people: the figures of a labelled set, each with a confidence interval.

A judge-model gate is only as good as the judge. Given pairs of (human score, judge score) --
or, for pairwise labels, (human winner, judge winner) -- this module computes what a reviewer
asks first, with the well-kept implementations: quadratic-weighted Cohen's kappa
(``sklearn.metrics.cohen_kappa_score``; scipy has no weighted kappa), Spearman's rho
(``scipy.stats.spearmanr``), exact and within-one agreement, and at a threshold the judge's
true-positive and true-negative rates as a pass/fail classifier (Wilson intervals,
``scipy.stats.binomtest``). Intervals of kappa, rho and the agreement rates are a seeded
bootstrap over rows (``scipy.stats.bootstrap``, percentile), so the same set gives the same
figures every run. A row whose judge verdict is missing is a disagreement in every figure,
never dropped: it is given the score furthest from the human's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

SEED = 20261202
"""The bootstrap's seed: reproducible intervals."""
RESAMPLES = 1000
"""Bootstrap resamples per figure: about 1 s for the four figures of a set, whatever its size."""


@dataclass(frozen=True)
class Figure:
    """One agreement figure with its interval (``low`` / ``high`` are None when it cannot be had)."""

    name: str
    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0

    def text(self) -> str:
        if self.value is None or math.isnan(self.value):
            return f"{self.name}: – (n={self.n})"
        interval = f" [{self.low:.2f}, {self.high:.2f}]" if self.low is not None and self.high is not None else ""
        return f"{self.name}: {self.value:.2f}{interval} (n={self.n})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": _finite(self.value), "low": _finite(self.low),
                "high": _finite(self.high), "n": self.n}


@dataclass(frozen=True)
class ScoreAgreement:
    """The figures of a scored labelled set, and the confusion counts behind them."""

    figures: dict[str, Figure]
    confusion: dict[tuple[int, int], int] = field(default_factory=dict)
    """(human score, judge score) -> rows, half-point scores counted as the whole score above; a missing verdict
    is counted under judge score 0."""
    scale: int = 5


def score_agreement(human: Sequence[float], judge: Sequence[float | None], *, scale: int = 5,
                    threshold: float | None = None, confidence: float = 0.95) -> ScoreAgreement:
    """Figures for rows of (human score, judge score or None) on a 1..``scale`` scale."""
    if len(human) != len(judge):
        raise ValueError(f"{len(human)} human scores but {len(judge)} judge scores")
    people = [float(h) for h in human]
    filled = [_filled(h, j, scale) for h, j in zip(people, judge)]
    labels = list(range(1, scale + 1))
    figures = {
        "kappa": _boot("quadratic-weighted kappa", people, filled, lambda a, b: _kappa(a, b, labels), confidence),
        "spearman": _boot("Spearman's rho", people, filled, _spearman, confidence),
        "exact": _boot("exact agreement", people, filled, lambda a, b: _share(a, b, 0), confidence),
        "within_one": _boot("within-one agreement", people, filled, lambda a, b: _share(a, b, 1), confidence),
    }
    if threshold is not None:
        positives = [j for h, j in zip(people, filled) if h >= threshold]
        negatives = [j for h, j in zip(people, filled) if h < threshold]
        figures["tpr"] = rate_figure("true-positive rate (human pass, judge pass)",
                               sum(1 for j in positives if j >= threshold), len(positives), confidence)
        figures["tnr"] = rate_figure("true-negative rate (human fail, judge fail)",
                               sum(1 for j in negatives if j < threshold), len(negatives), confidence)
    confusion: dict[tuple[int, int], int] = {}
    for h, j in zip(people, judge):
        cell = (whole(h), 0 if j is None or _nan(j) else whole(float(j)))
        confusion[cell] = confusion.get(cell, 0) + 1
    return ScoreAgreement(figures, confusion, scale)


def pairwise_agreement(human: Sequence[str], judge: Sequence[str | None], consistent: Sequence[bool],
                       confidence: float = 0.95) -> dict[str, Figure]:
    """Figures for pairwise labels ("1" / "2" / "tie"): agreement with the human's winner, and how often
    the judge's verdict survived swapping the answers (a property of the judge, whatever the labels)."""
    if not len(human) == len(judge) == len(consistent):
        raise ValueError("human, judge and consistent must have one entry per row")
    agree = sum(1 for h, j in zip(human, judge) if j is not None and str(h) == str(j))
    return {"agreement": rate_figure("agreement with the human winner", agree, len(human), confidence),
            "position_consistency": rate_figure("position consistency (same verdict in both orders)",
                                          sum(bool(c) for c in consistent), len(consistent), confidence)}


# --------------------------------------------------------------------------- the statistics


def whole(score: float) -> int:
    """The whole score a half-point one counts as in kappa and the confusion matrix: half up (3.5 -> 4)."""
    return int(math.floor(float(score) + 0.5))


def _filled(human: float, judge: float | None, scale: int) -> float:
    """A missing verdict counts as the score furthest from the human's: a disagreement, never a gap."""
    if judge is None or _nan(judge):
        return 1.0 if human > (1 + scale) / 2 else float(scale)
    return float(judge)


def _kappa(a: Sequence[float], b: Sequence[float], labels: list[int]) -> float:
    """Quadratic-weighted kappa is defined on categories: half-point scores count as the whole score above."""
    from sklearn.metrics import cohen_kappa_score  # type: ignore[import-untyped]

    a, b = [whole(x) for x in a], [whole(y) for y in b]
    if len(set(a)) == 1 and len(set(b)) == 1:
        return 1.0 if a[0] == b[0] else 0.0  # sklearn divides 0 by 0 here
    return float(cohen_kappa_score(a, b, labels=labels, weights="quadratic"))


def _spearman(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    if len(set(a)) < 2 or len(set(b)) < 2:
        return math.nan  # a constant column has no rank order
    return float(spearmanr(a, b).statistic)


def _share(a: Sequence[float], b: Sequence[float], within: int) -> float:
    return sum(1 for x, y in zip(a, b) if abs(x - y) <= within + 1e-9) / len(a) if a else math.nan


def _boot(name: str, a: list[float], b: list[float], statistic: Callable[[Sequence[float], Sequence[float]], float],
          confidence: float) -> Figure:
    """The figure on all rows, and a seeded percentile bootstrap interval over rows (paired)."""
    n = len(a)
    if n == 0:
        return Figure(name, None, n=0)
    value = statistic(a, b)
    if n < 3 or math.isnan(value):
        return Figure(name, value, n=n)
    import numpy as np
    from scipy.stats import bootstrap

    def resampled(x: Any, y: Any) -> float:
        return statistic([float(v) for v in x], [float(v) for v in y])

    with warnings.catch_warnings():  # every resample agreeing alike (e.g. kappa 1) is an answer, not a problem
        warnings.simplefilter("ignore")
        result = bootstrap((np.asarray(a), np.asarray(b)), resampled, paired=True, vectorized=False,
                           n_resamples=RESAMPLES, confidence_level=confidence, method="percentile", random_state=SEED)
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):
        return Figure(name, value, n=n)
    return Figure(name, value, low, high, n)


def rate_figure(name: str, hits: int, n: int, confidence: float) -> Figure:
    """A share of ``n`` with its Wilson interval (sound at small n and at 0 or 1, unlike the normal one)."""
    if n == 0:
        return Figure(name, None, n=0)
    from scipy.stats import binomtest

    ci = binomtest(hits, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Figure(name, hits / n, float(ci.low), float(ci.high), n)


def _nan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value
