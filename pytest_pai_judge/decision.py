"""Deciding a case from several samples of a noisy judge: met, not met, or inconclusive.

Pure functions of the samples (deterministic, no I/O), so every mode decides alike.

**Scores** (``assert_judge_score``, ``assert_judge_custom``). The question is "is this case's
typical score at least the threshold t?". On the judge's integer scale a score passes when it is
at least ``ceil(t)``, i.e. when the judge's underlying (continuous) score is above the boundary
``b = ceil(t) - 1/2`` (for non-integer scores: ``b = t``). The rule is a one-sided one-sample
t-test of the samples' mean against ``b``: met when ``P(mean > b)`` reaches the confidence,
not met when ``P(mean < b)`` does. The samples' variance is pooled with a prior of
:data:`PRIOR_DF` pseudo-samples at a spread of :data:`PRIOR_SD` points (a few samples never show
a judge to be more precise than that): identical samples are strong but not certain evidence,
and one higher sample never turns a met case into an inconclusive one. With ``PRIOR_DF = 0`` it
is exactly Student's t-test (``scipy.stats.ttest_1samp``). Decisions need at least 2 readable
samples (an unreadable sample is missing data); with 1 sample asked (the default) the rule is the
single verdict's ``score >= t``. Early stopping: the test is applied after the first round (3
samples, see :data:`FIRST_ROUND`) and, for the cases it leaves undecided, once more on all the
samples; each look uses half the error rate (Bonferroni), so looking twice does not raise the
chance of a wrong met / not met above ``1 - confidence``. A case still undecided after all its
samples is inconclusive.

**Pairwise** (``assert_judge_prefers`` / ``assert_judge_not_worse``). One sample judges both
orders; a consistent winner is a vote for it, disagreement (position bias) a vote for a tie.
The winner is the vote with a strict majority of the K samples, decided as soon as it is
reached (or can no longer be); no majority is a tie for ``not_worse`` and inconclusive for
``prefers``.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MAX_SAMPLES = 128
"""The spec's upper bound of ``n``: a case's samples can always be drawn in one call."""
PRIOR_DF = 2
"""Pseudo-samples of the prior on the judge's spread (0: no prior, Student's t-test as it is)."""
PRIOR_SD = 0.5
"""The prior's spread, in score points: half a point, the precision a few samples can claim at best."""
FIRST_ROUND = 3
"""Samples a score assertion draws before its first decision. Two is the fewest a t-test can use,
but on one degree of freedom two samples that differ by a point decide nothing, even far from the
threshold; three decide a clear case at any usual temperature."""


class Decision(str, enum.Enum):
    MET = "met"
    NOT_MET = "not met"
    INCONCLUSIVE = "inconclusive"
    UNDECIDED = "undecided"
    """Only between rounds: more samples may decide."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ScoreTest:
    """The numbers behind a score decision, for the failure text and the report."""

    decision: Decision
    mean: float
    median: float
    spread: float
    """The samples' standard deviation (0 for one sample)."""
    boundary: float
    p_met: float
    p_not_met: float


def boundary_of(threshold: float, scores: Sequence[float]) -> float:
    """The pass boundary on the judge's continuous scale (see the module docstring)."""
    if all(float(s).is_integer() for s in scores):
        return math.ceil(threshold) - 0.5
    return threshold


def decide_score(scores: Sequence[float], threshold: float, *, confidence: float, final: bool,
                 looks: int = 1) -> ScoreTest:
    """Met / not met / inconclusive (``final``) or undecided for these samples (``looks``: how many times
    the rule may be applied to one case, each at ``(1 - confidence) / looks``)."""
    n = len(scores)
    mean = statistics.fmean(scores) if scores else math.nan
    median = statistics.median(scores) if scores else math.nan
    spread = statistics.stdev(scores) if n > 1 else 0.0
    boundary = boundary_of(threshold, scores)
    if n < 2:  # one readable sample of several asked is no evidence to decide on
        return ScoreTest(Decision.INCONCLUSIVE if final else Decision.UNDECIDED, mean, median, spread, boundary,
                         1.0, 1.0)
    p_met, p_not_met = one_sided_p(scores, boundary)
    alpha = (1 - confidence) / max(1, looks)
    if p_met <= alpha:
        decision = Decision.MET
    elif p_not_met <= alpha:
        decision = Decision.NOT_MET
    else:
        decision = Decision.INCONCLUSIVE if final else Decision.UNDECIDED
    return ScoreTest(decision, mean, median, spread, boundary, p_met, p_not_met)


def one_sided_p(scores: Sequence[float], boundary: float, *, prior_df: float = PRIOR_DF,
                prior_sd: float = PRIOR_SD) -> tuple[float, float]:
    """p-values of "mean > boundary" and "mean < boundary": a t-test whose variance pools the samples'
    with ``prior_df`` pseudo-samples at ``prior_sd`` (``prior_df + n - 1`` degrees of freedom).

    With ``prior_df=0`` it equals ``scipy.stats.ttest_1samp(scores, boundary, alternative=...)``.
    """
    from scipy import stats

    n = len(scores)
    df = prior_df + n - 1
    variance = (prior_df * prior_sd ** 2 + (n - 1) * statistics.variance(scores)) / df
    t = (statistics.fmean(scores) - boundary) / math.sqrt(variance / n)
    return float(stats.t.sf(t, df)), float(stats.t.cdf(t, df))


def first_round(samples: int, *, pairwise: bool, whole: Callable[[int], int] = lambda n: n) -> int:
    """How many samples the first round draws: the fewest that can decide (``whole``: rounded up to the
    calls that draw them)."""
    if samples <= 1:
        return 1
    return min(samples, whole(majority(samples) if pairwise else FIRST_ROUND))


def majority(samples: int) -> int:
    return samples // 2 + 1


def decide_winner(votes: Sequence[str], samples: int, *, final: bool) -> str | None:
    """The vote ("1", "2" or "tie") with a strict majority of ``samples``; "" for no majority; None: undecided."""
    need = majority(samples)
    left = samples - len(votes)
    counts = {v: votes.count(v) for v in ("1", "2", "tie")}
    for vote, count in counts.items():
        if count >= need:
            return vote
    if final or all(count + left < need for count in counts.values()):
        return ""
    return None
