"""``--judge-regression=POINTS[@CONF]``: a paired test of the suite's mean score against the baseline.

``--judge-max-drop`` looks at one case at a time; with a sampling judge a 1-point move of one case
is noise, while many small drops that add up to a real regression pass it. This module pairs the
cases :func:`~.drift.compute_drift` matched by key and tests their changes together:

* Each case's score is put on one 5-point scale first (``score / max_score * 5``), so a /10 and a
  /5 case never mix raw. With several samples the row's score is already the case's aggregate: one
  value per case per run (pooling samples as if independent would give false significance).
* ``d = now - then`` per case. The decision is **one-sided**: the run fails when the upper bound of
  the one-sided ``CONF`` bootstrap interval of ``mean(d)`` is below ``-POINTS`` ("we are CONF sure
  the mean fell by more than POINTS"). That bound is the upper end of the two-sided ``2*CONF - 1``
  interval, which is the interval shown (e.g. 90% for 95%). ``scipy.stats.bootstrap`` (BCa, a fixed
  seed, so a rerun gives the same figures; percentile when BCa cannot be computed) does the work;
  ``scipy.stats.wilcoxon(d, zero_method="zsplit", alternative="less")`` gives a one-sided rank-test
  p-value for "the scores went down" alongside (reported, not decided on).
* A case scored in the baseline with no score now (a judge error, no verdict) is not dropped: it
  counts at the bottom of its scale (1 point). A case unscored in the baseline has nothing to be
  compared with and is left out, counted. New, gone and not-run cases are not pairs.
* Fewer than :data:`MIN_PAIRS` pairs: ``too few``, said everywhere, and the exit status is left as it
  is (like ``--judge-max-drop`` with no case in common). All changes equal (e.g. all zero): the
  bootstrap is degenerate and the interval is that value on both ends.

Pandas-free at import (the plugin parses the option at configure time); numpy and scipy are imported
only by :func:`compute_regression`.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MIN_PAIRS = 5
"""Fewer matched cases than this are ``too few`` to test (reported, never a silent pass or failure)."""
SCALE = 5
"""Every score is put on this scale before the changes are taken."""
DEFAULT_CONFIDENCE = 0.95
SEED = 20240613
"""The bootstrap's seed: the same changes always give the same interval."""
RESAMPLES = 9999
LOST = "no score now"
"""How a case scored then and unscored now is counted (at the bottom of its scale)."""
EXAMPLE = "0.2@95%"
_SPEC = re.compile(r"^\s*(?P<points>[0-9]*\.?[0-9]+)\s*(?:@\s*(?P<conf>[0-9]*\.?[0-9]+)\s*(?P<pct>%?)\s*)?$")


@dataclass(frozen=True)
class RegressionLimit:
    """A parsed ``POINTS[@CONF]``: fail when the mean fell by more than ``points`` with ``confidence``."""

    points: float
    confidence: float
    text: str

    @property
    def flag(self) -> str:
        return f"--judge-regression={self.text}"


def parse_limit(text: str) -> RegressionLimit:
    """``0.2@95%``, ``0.2@0.95`` or ``0.2`` (95%); a ValueError says what is wrong, with an example."""
    match = _SPEC.match(str(text))
    hint = (f"expected POINTS[@CONF], e.g. {EXAMPLE} (fail when the mean score, on a 5-point scale, dropped "
            "by more than 0.2 points with 95% confidence)")
    if not match:
        raise ValueError(hint)
    points = float(match["points"])
    confidence = DEFAULT_CONFIDENCE
    if match["conf"] is not None:
        confidence = float(match["conf"]) / (100 if match["pct"] else 1)
        if not match["pct"] and confidence >= 1:
            raise ValueError(f"confidence {match['conf']} is not a fraction below 1: write it as {match['conf']}% "
                             f"or 0.{match['conf'].replace('.', '')}; {hint}")
    if not 0.5 < confidence < 1:
        raise ValueError(f"the confidence must be above 50% and below 100%; {hint}")
    if points > SCALE:
        raise ValueError(f"{points:g} points is more than the whole 5-point scale; {hint}")
    return RegressionLimit(points, confidence, " ".join(str(text).split()))


@dataclass(frozen=True)
class Regression:
    """The result of the paired test; its texts are what the summary, the pages and junitxml say."""

    limit: RegressionLimit
    status: str
    """``held``, ``failed`` or ``too few``."""
    pairs: int
    wins: int = 0
    losses: int = 0
    ties: int = 0
    mean_change: float | None = None
    low: float | None = None
    """Lower end of the two-sided ``2*CONF - 1`` interval of the mean change (shown, not decided on)."""
    high: float | None = None
    """The one-sided ``CONF`` upper bound of the mean change: the run fails when it is below ``-POINTS``."""
    method: str | None = None
    wilcoxon_p: float | None = None
    lost: int = 0
    """Cases scored then and unscored now, counted at the bottom of their scale (part of ``pairs``)."""
    left_out: dict[str, int] = field(default_factory=dict)
    """Matched-by-key cases that are not pairs, by why: unscored then, unscored in both runs."""
    unmatched: dict[str, int] = field(default_factory=dict)
    """Cases in one run only (``new``, ``gone``, ``not run``)."""
    cases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def interval_level(self) -> float:
        """The two-sided level whose upper end is the one-sided bound (90% for 95%)."""
        return 2 * self.limit.confidence - 1

    def reason(self) -> str:
        """Why the run failed, was not tested, or held, in a few words."""
        if self.status == "failed":
            return f"the mean score dropped by more than {_points(self.limit.points)} ({self.limit.flag})"
        if self.status == "too few":
            return (f"{self.limit.flag} not tested: not enough matched cases ({self.pairs} "
                    f"{'pair' if self.pairs == 1 else 'pairs'}, at least {MIN_PAIRS} needed)")
        return (f"a drop of the mean score by more than {_points(self.limit.points)} was not shown at "
                f"{_pct(self.limit.confidence)} ({self.limit.flag})")

    def figures(self) -> str:
        """Mean change with its bound and interval, pairs, wins / losses / ties, Wilcoxon p, what was counted how."""
        parts = []
        if self.mean_change is not None:
            conf = _pct(self.limit.confidence)
            parts += [f"mean change {_num(self.mean_change)} points of 5 ({conf} upper bound {_num(self.high)}, "
                     f"one-sided; {_pct(self.interval_level)} interval {_num(self.low)} to {_num(self.high)})",
                     f"{self.pairs} pairs: {self.wins} wins / {self.losses} losses / {self.ties} ties",
                     "Wilcoxon p " + ("–" if self.wilcoxon_p is None else f"{self.wilcoxon_p:.3g}") + " (one-sided)"]
        if self.lost:
            parts.append(f"{self.lost} with no score now counted at the bottom of the scale")
        for why, n in self.left_out.items():
            if n:
                parts.append(f"{n} {why} left out")
        return "; ".join(parts)

    def line(self) -> str:
        """The terminal's one regression line."""
        head = {"failed": f"FAILED {self.limit.flag}: mean dropped by more than {_points(self.limit.points)}",
                "held": f"{self.limit.flag} held",
                "too few": self.reason()}[self.status]
        figures = self.figures()
        return f"{head}: {figures}" if figures else head

    def to_json(self) -> dict[str, Any]:
        """The ``<report>.regression.json`` sidecar: every figure, the rules they follow, and the pairs."""
        return {
            "option": self.limit.text, "points": self.limit.points, "confidence": self.limit.confidence,
            "sided": "one-sided (fails when the upper bound is below -points)", "scale": SCALE,
            "status": self.status, "reason": self.reason(), "pairs": self.pairs, "min_pairs": MIN_PAIRS,
            "wins": self.wins, "losses": self.losses, "ties": self.ties, "mean_change": self.mean_change,
            "upper_bound": self.high, "interval": [self.low, self.high] if self.high is not None else None,
            "interval_level": self.interval_level, "method": self.method, "seed": SEED, "resamples": RESAMPLES,
            "wilcoxon_p": self.wilcoxon_p, "lost": self.lost, "left_out": self.left_out,
            "unmatched": self.unmatched, "cases": self.cases,
        }

    def junit_properties(self) -> list[tuple[str, str]]:
        """junitxml ``<testsuite>`` properties (text values; a missing figure is left out)."""
        props = [("judge_regression", self.status), ("judge_regression_limit", self.limit.text),
                 ("judge_regression_pairs", str(self.pairs))]
        for name, value in (("mean_change", self.mean_change), ("upper_bound", self.high), ("low", self.low),
                            ("wilcoxon_p", self.wilcoxon_p)):
            if value is not None:
                props.append((f"judge_regression_{name}", f"{value:.6g}"))
        if self.mean_change is not None:
            props.append(("judge_regression_wins_losses_ties", f"{self.wins}/{self.losses}/{self.ties}"))
        props.append(("judge_regression_summary", self.line()))
        return props


def compute_regression(limit: RegressionLimit, per_case: pd.DataFrame, baseline_df: pd.DataFrame,
                       current_df: pd.DataFrame) -> Regression:
    """The paired test over ``per_case`` (:func:`~.drift.compute_drift`'s per-case frame of these two frames).

    The frames are needed for each case's ``max_score``: they are paired again the same way, with the
    scale in place of the score, so both sides of every pair are put on the 5-point scale.
    """
    from .drift import compute_drift

    scales, _ = compute_drift(baseline_df.assign(score=baseline_df["max_score"]),
                              current_df.assign(score=current_df["max_score"]))
    scale_of = {(k, q): (t, n) for k, q, t, n in zip(scales["key"], scales["question"].fillna(""),
                                                      scales["score_then"], scales["score_now"])}
    pairs: list[dict[str, Any]] = []
    left_out = {"unscored in the baseline": 0, "unscored in both runs": 0}
    unmatched = {"new": 0, "gone": 0, "not run": 0}
    for r in per_case.to_dict(orient="records"):
        status = str(r["status"])
        if status in unmatched:
            unmatched[status] += 1
            continue
        top_then, top_now = scale_of.get((r["key"], "" if _missing(r["question"]) else r["question"]), (None, None))
        top_then, top_now = _top(top_then, top_now), _top(top_now, top_then)
        then, now = r["score_then"], r["score_now"]
        if _missing(then):
            left_out["unscored in the baseline" if not _missing(now) else "unscored in both runs"] += 1
            continue
        counted = "score"
        if _missing(now):
            now, counted = 1.0, LOST  # no verdict now: the bottom of its scale, never left out
        then5, now5 = float(then) / top_then * SCALE, float(now) / top_now * SCALE
        pairs.append({"key": str(r["key"]), "then": round(then5, 9), "now": round(now5, 9),
                      "change": round(now5 - then5, 9), "counted": counted})
    return _test(limit, pairs, left_out, unmatched)


def _test(limit: RegressionLimit, pairs: list[dict[str, Any]], left_out: dict[str, int],
          unmatched: dict[str, int]) -> Regression:
    import numpy as np

    d = np.array([p["change"] for p in pairs], dtype=float)
    lost = sum(1 for p in pairs if p["counted"] == LOST)
    found = Regression(limit, "too few", len(d), lost=lost, left_out=left_out, unmatched=unmatched, cases=pairs)
    if len(d) < MIN_PAIRS:
        return found
    low, high, method = mean_interval(d, limit.confidence)
    return replace(found, status="failed" if high < -limit.points - 1e-9 else "held",
                   wins=int((d > 0).sum()), losses=int((d < 0).sum()), ties=int((d == 0).sum()),
                   mean_change=float(d.mean()), low=low, high=high, method=method, wilcoxon_p=wilcoxon_less(d))


def mean_interval(d: Any, confidence: float) -> tuple[float, float, str]:
    """(low, high, method): the two-sided ``2*confidence - 1`` bootstrap interval of the mean of ``d``.

    ``high`` is the one-sided ``confidence`` upper bound. All values equal: the interval is that value
    (the bootstrap distribution is a point); BCa that cannot be computed falls back to percentile.
    """
    import numpy as np
    from scipy import stats

    d = np.asarray(d, dtype=float)
    if np.ptp(d) == 0:
        return float(d[0]), float(d[0]), "degenerate (all changes equal)"
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa on few, tied values may warn and give NaN: then percentile
            result = stats.bootstrap((d,), np.mean, confidence_level=2 * confidence - 1, method=method,
                                     n_resamples=RESAMPLES, random_state=np.random.default_rng(SEED))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if not (math.isnan(low) or math.isnan(high)):
            return low, high, method
    return float(d.mean()), float(d.mean()), "none"  # pragma: no cover - percentile always gives numbers


def wilcoxon_less(d: Any) -> float | None:
    """One-sided signed-rank p-value for "the changes lie below zero"; zeros split between the signs."""
    import numpy as np
    from scipy import stats

    d = np.asarray(d, dtype=float)
    if not len(d):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few pairs or many ties: scipy warns that the p-value is approximate
        p = float(stats.wilcoxon(d, zero_method="zsplit", alternative="less").pvalue)
    return None if math.isnan(p) else p


def _top(value: Any, other: Any) -> float:
    """A case's scale: its own run's ``max_score``, else the other run's, else 5 (the judge's default)."""
    for v in (value, other):
        if not _missing(v) and float(v) > 0:
            return float(v)
    return float(SCALE)


def _missing(value: Any) -> bool:
    from .table import isna  # pandas: only once there is something to compare

    return isna(value)


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    text = f"{value:+.2f}".rstrip("0").rstrip(".")
    return "±0" if text in ("+0", "-0") else text


def _pct(value: float) -> str:
    return f"{value * 100:.4g}%"


def _points(value: float) -> str:
    return f"{value:g} point" + ("" if value == 1 else "s")
