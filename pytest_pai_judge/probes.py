"""Bias probes: does the judge favour a position, a longer answer, or contradict itself?

``assert_judge_unbiased(question, answer, probes=[...])`` judges one case in the ways that expose
the known biases of LLM judges, and reports an effect size per probe:

- **position**: ``answer`` against ``other`` (default: against itself) in both orders, ``samples``
  times. A sample *flips* when its two orders disagree once the answers are swapped back (the
  verdict followed the position, not the answer). Effect: the flip rate, with a Wilson interval.
- **verbosity**: ``answer`` and the same answer followed by fluent but empty text (the padding
  adds no fact). Effect: the mean score the padding gains, in points, with a seeded bootstrap
  interval, and Cliff's delta (from the Mann-Whitney U statistic) as a scale-free size.
- **consistency**: the spread (standard deviation) of ``samples`` verdicts of one request, with
  its chi-square interval; a judge that samples at temperature > 0 spreads somewhat, but a
  spread near a point means one verdict tells little.

Each probe fails when its effect is above its limit (the point estimate, not the interval: with
a few samples the interval is wide and would hide everything). Like :mod:`.calibration`, the
probe is ONE expectation, so deferred and batch mode judge it with the run's other verdicts.
"""

from __future__ import annotations

import math
import re
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .agreement import SEED, rate_figure
from .counts import cost_columns
from .errors import JudgeAssertionError
from .expectation import (
    Expectation,
    Outcome,
    consensus,
    failure_columns,
    median_of,
    nearest_median,
    no_verdict,
    nodeid_of,
    readable_pairs,
    readable_scores,
    samples_of,
    spread_of,
)
from .request import JudgeRequest

if TYPE_CHECKING:  # pragma: no cover
    import pytest

    from .options import Settings

PROBES = ("position", "verbosity", "consistency")
DEFAULT_LIMITS = {"position": 0.2, "verbosity": 0.5, "consistency": 1.0}
"""Flip rate (share of samples), padding gain (score points), spread (score points, sd)."""
MIN_SAMPLES = 5
"""Samples per request unless ``samples=`` says otherwise (or the test's setting is higher)."""
PADDING_EN = (" To put it another way, this is an important question, and it deserves a careful and thoughtful "
              "answer. Many different factors can be considered here, and it is worth keeping all of them in "
              "mind. In summary, the answer above reflects these considerations as a whole.")
PADDING_ZH = ("换句话说，这是一个重要的问题，值得认真而周到地回答。这里可以考虑许多不同的因素，值得把它们都记在心里。"
              "总而言之，上面的回答整体上体现了这些考虑。")
"""Fluent, on-topic in tone, and empty: it adds length and no fact, so a fair judge gives it nothing."""
_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True)
class ProbeEffect:
    """One probe's effect size, its interval (None when it cannot be had) and its limit (None: not checked)."""

    probe: str
    name: str
    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    limit: float | None = None
    detail: str = ""

    @property
    def within(self) -> bool:
        return self.limit is None or (self.value is not None and self.value <= self.limit)

    def text(self) -> str:
        sign = "+" if self.probe == "verbosity" else ""
        shown = "–" if self.value is None else f"{self.value:{sign}.2f}"
        interval = f" [{self.low:.2f}, {self.high:.2f}]" if self.low is not None and self.high is not None else ""
        limit = "" if self.limit is None else f"; limit {self.limit:g}{'' if self.within else ' -- EXCEEDED'}"
        detail = f"; {self.detail}" if self.detail else ""
        return f"{self.probe}: {self.name} {shown}{interval} (n={self.n}{detail}){limit}"

    def to_dict(self) -> dict[str, Any]:
        return {"probe": self.probe, "name": self.name, "value": _finite(self.value), "low": _finite(self.low),
                "high": _finite(self.high), "n": self.n, "limit": self.limit, "detail": self.detail,
                "within": self.within}


@dataclass(frozen=True)
class BiasProbes:
    """The probes of one case: effect per probe, in the order asked."""

    effects: dict[str, ProbeEffect]
    question: str = ""
    nodeid: str = ""
    model: str = ""
    samples: int = 1

    def __getitem__(self, probe: str) -> ProbeEffect:
        return self.effects[probe]

    @property
    def misses(self) -> list[ProbeEffect]:
        return [e for e in self.effects.values() if not e.within]

    def text(self) -> str:
        return "\n".join(f"  {e.text()}" for e in self.effects.values())

    def to_dict(self) -> dict[str, Any]:
        return {"check": "probes", "nodeid": self.nodeid, "model": self.model, "samples": self.samples,
                "question": self.question, "effects": {k: e.to_dict() for k, e in self.effects.items()},
                "misses": [e.probe for e in self.misses]}


@dataclass(slots=True)
class ProbeExpectation(Expectation):
    """One case's probe requests waiting for their samples; ``roles`` says which request is which."""

    ASSERTIONS: ClassVar[tuple[str, ...]] = ("unbiased",)
    probes: list[str] = field(default_factory=list)
    roles: dict[str, int] = field(default_factory=dict)
    """original / padded / forward / backward -> index in ``requests``."""
    limits: dict[str, float | None] = field(default_factory=dict)
    asserting: bool = True
    """False for ``judge.probes`` (a value): effects beyond their limits are reported, not raised."""
    measured: BiasProbes | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**Expectation.to_dict(self), "probes": list(self.probes), "roles": dict(self.roles),
                "limits": dict(self.limits), "asserting": self.asserting}

    def restore(self, data: dict[str, Any]) -> None:
        self.probes, self.roles = list(data["probes"]), {k: int(v) for k, v in data["roles"].items()}
        self.limits, self.asserting = dict(data.get("limits") or {}), bool(data.get("asserting", True))

    def rounds(self) -> list[list[int]]:
        return [list(range(self.samples))]

    def judge_check(self) -> dict[str, Any] | None:
        return self.measured.to_dict() if self.measured is not None else None

    def evaluate(self, outcomes: list[Any]) -> tuple[list[Any], BaseException | None]:
        per_request: list[list[Outcome]] = outcomes if self.samples > 1 else [[o] for o in outcomes]
        drawn = {role: per_request[index] for role, index in self.roles.items()}
        records = [self._record(role, drawn) for role in self.roles if role != "backward"]
        flat = [o for samples in per_request for o in samples]
        readable = [o for o in flat if not isinstance(o, BaseException)]
        failure = no_verdict(flat, readable)
        effects: dict[str, ProbeEffect] = {}
        for probe in self.probes:
            effect = {"position": self._position, "verbosity": self._verbosity,
                      "consistency": self._consistency}[probe](drawn)
            effects[probe] = effect
            if effect.value is None and failure is None:  # nothing to measure on: never a pass
                failure = next((o for role in _roles_of(probe) for o in drawn.get(role, [])
                                if isinstance(o, BaseException)), None)
        request = self.requests[0]
        self.measured = BiasProbes(effects, request.question or "", self.nodeid, request.model, self.samples)
        if failure is not None:
            return records, failure
        misses = self.measured.misses
        if misses and self.asserting:
            names = ", ".join(f"{e.probe} ({e.name} {e.value:.2f} > {e.limit:g})" for e in misses
                              if e.value is not None and e.limit is not None)
            return records, JudgeAssertionError(
                f"the judge shows a bias: {names} ({request.describe()})\n{self.measured.text()}\n"
                f"  rerun only this test: pytest \"{self.labels.get('rerun', self.nodeid)}\"")
        return records, None

    def _record(self, role: str, drawn: dict[str, list[Outcome]]) -> Any:
        request, samples = self.requests[self.roles[role]], drawn[role]
        case = {"original": "original", "padded": "verbosity", "forward": "position"}[role]
        if role == "forward":
            pairs = readable_pairs(samples, drawn["backward"])
            per_request = [samples, drawn["backward"]]
            if not pairs:
                return self.record(request, None, case=case, samples=len(samples),
                                   **failure_columns(samples + drawn["backward"], per_request))
            results = [consensus(f, b) for f, b in pairs]
            scores = [s for r in results if (s := r.score1) is not None]
            return self.record(request, pairs[0][0], case=case, samples=len(samples), winner=results[0].winner,
                               scores=scores, score=median_of(scores), score2=median_of([r.score2 for r in results]),
                               spread=spread_of(scores), **cost_columns(per_request))
        readable, scores = readable_scores(samples)
        if not scores:
            return self.record(request, None, case=case, samples=len(samples), **failure_columns(samples, [samples]))
        return self.record(request, nearest_median(readable, scores), case=case, samples=len(samples), scores=scores,
                           score=median_of(scores), spread=spread_of(scores), **cost_columns([samples]))

    def _position(self, drawn: dict[str, list[Outcome]]) -> ProbeEffect:
        pairs = readable_pairs(drawn["forward"], drawn["backward"])
        name = "flip rate (the verdict follows the position)"
        limit = self.limits.get("position")
        if not pairs:
            return ProbeEffect("position", name, None, limit=limit)
        results = [consensus(f, b) for f, b in pairs]
        flips = sum(not r.consistent for r in results)
        first = sum(o.winner == "1" for f, b in pairs for o in (f, b))
        rate = rate_figure(name, flips, len(pairs), self.confidence)
        return ProbeEffect("position", name, rate.value, rate.low, rate.high, len(pairs), limit,
                           f"position 1 won {first} of {2 * len(pairs)} orders")

    def _verbosity(self, drawn: dict[str, list[Outcome]]) -> ProbeEffect:
        _, plain = readable_scores(drawn["original"])
        _, padded = readable_scores(drawn["padded"])
        name = "score gained by empty padding (points)"
        limit = self.limits.get("verbosity")
        if not plain or not padded:
            return ProbeEffect("verbosity", name, None, limit=limit)
        gain = statistics.fmean(padded) - statistics.fmean(plain)
        low, high = _gain_interval(padded, plain, self.confidence)
        delta = cliffs_delta(padded, plain)
        return ProbeEffect("verbosity", name, gain, low, high, min(len(plain), len(padded)), limit,
                           f"Cliff's delta {delta:+.2f}; mean {statistics.fmean(plain):.2f} -> "
                           f"{statistics.fmean(padded):.2f}")

    def _consistency(self, drawn: dict[str, list[Outcome]]) -> ProbeEffect:
        _, scores = readable_scores(drawn["original"])
        name = "spread of one request's samples (sd, points)"
        limit = self.limits.get("consistency")
        if len(scores) < 2:
            return ProbeEffect("consistency", name, None, n=len(scores), limit=limit)
        sd = statistics.stdev(scores)
        low, high = _sd_interval(sd, len(scores), self.confidence)
        mode = max(set(scores), key=scores.count)
        return ProbeEffect("consistency", name, sd, low, high, len(scores), limit,
                           f"{scores.count(mode)} of {len(scores)} samples gave {mode:g}")


def _roles_of(probe: str) -> tuple[str, ...]:
    return {"position": ("forward", "backward"), "verbosity": ("original", "padded"),
            "consistency": ("original",)}[probe]


def cliffs_delta(a: Sequence[float], b: Sequence[float]) -> float:
    """P(a > b) - P(a < b) over all pairs: the rank-biserial correlation, 2U / (n_a n_b) - 1 (Mann-Whitney U)."""
    from scipy.stats import mannwhitneyu

    u = mannwhitneyu(a, b, alternative="two-sided").statistic
    return float(2 * u / (len(a) * len(b)) - 1)


def _gain_interval(padded: list[float], plain: list[float], confidence: float) -> tuple[float | None, float | None]:
    """A seeded percentile bootstrap of the difference in means (two independent samples)."""
    if len(padded) < 2 or len(plain) < 2:
        return None, None
    if len(set(padded)) == len(set(plain)) == 1:  # every resample gives the same difference
        gain = padded[0] - plain[0]
        return gain, gain
    import numpy as np
    from scipy.stats import bootstrap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bootstrap((np.asarray(padded), np.asarray(plain)), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis),
                           n_resamples=1000, confidence_level=confidence, method="percentile", random_state=SEED)
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return (None, None) if math.isnan(low) or math.isnan(high) else (low, high)


def _sd_interval(sd: float, n: int, confidence: float) -> tuple[float, float]:
    """The chi-square interval of a standard deviation (normal samples): sqrt((n-1) s^2 / chi2 quantiles)."""
    from scipy.stats import chi2

    alpha = 1 - confidence
    spread = (n - 1) * sd * sd
    return math.sqrt(spread / chi2.ppf(1 - alpha / 2, n - 1)), math.sqrt(spread / chi2.ppf(alpha / 2, n - 1))


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def padding_for(question: str, answer: str) -> str:
    """The empty padding in the case's language (Chinese when the question or answer has CJK characters)."""
    return PADDING_ZH if _CJK.search(question + answer) else PADDING_EN


def probe_expectation(settings: Settings, item: pytest.Item | None, question: str, answer: str, *,
                      probes: Sequence[str], other: str | None, samples: int | None, padding: str | None,
                      model: str | None, fields: dict[str, Any], limits: dict[str, float | None],
                      asserting: bool = True) -> ProbeExpectation:
    """The requests of the probes asked for; refused now when a probe cannot be measured as asked."""
    __tracebackhide__ = True
    asked = list(dict.fromkeys([probes] if isinstance(probes, str) else probes))
    unknown = [p for p in asked if p not in PROBES]
    if unknown or not asked:
        raise ValueError((f"unknown probe(s) {unknown}" if unknown else "no probe given")
                         + f": choose from {', '.join(PROBES)}")
    for probe, limit in limits.items():
        if limit is not None and (limit < 0 or (probe == "position" and limit > 1)):
            allowed = "from 0 to 1" if probe == "position" else "0 or more"
            raise ValueError(f"the {probe} probe's limit must be {allowed}, got {limit!r}")
    model = model or settings.model
    requests: list[JudgeRequest] = []
    roles: dict[str, int] = {}
    if "verbosity" in asked or "consistency" in asked:
        roles["original"] = len(requests)
        requests.append(JudgeRequest.single(question, answer, model=model, **fields))
    if "verbosity" in asked:
        pad = padding if padding is not None else padding_for(question, answer)
        if not pad.strip():
            raise ValueError("padding= must be some text (the fluent but empty words added to the answer)")
        roles["padded"] = len(requests)
        requests.append(JudgeRequest.single(question, answer.rstrip() + pad, model=model, **fields))
    if "position" in asked:
        second = answer if other is None else other
        roles["forward"], roles["backward"] = len(requests), len(requests) + 1
        requests += [JudgeRequest.pairwise(question, answer, second, model=model, **fields),
                     JudgeRequest.pairwise(question, second, answer, model=model, **fields)]
    count = samples_of(samples if samples is not None else max(settings.samples, MIN_SAMPLES), settings, requests[0])
    if "consistency" in asked and count < 2:
        raise ValueError("the consistency probe needs samples >= 2 (it measures how samples of one request differ)")
    bounds = {p: limits[p] if limits.get(p) is not None else DEFAULT_LIMITS[p] for p in asked}
    return ProbeExpectation("unbiased", requests, None, nodeid_of(item), samples=count, probes=asked, roles=roles,
                            limits=bounds, asserting=asserting)


__all__ = ["BiasProbes", "ProbeEffect", "PROBES", "DEFAULT_LIMITS", "cliffs_delta", "probe_expectation"]
