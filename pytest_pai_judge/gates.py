"""Suite gates: ``--judge-gate "pass_rate >= 0.9 @ 95% for scene=翻译"`` -- decisions about the whole run.

A release decision is about the suite, not one case. A gate is parsed once, at configure (a bad
one is a usage error naming it, before anything is judged), and evaluated once on the
controller over every report row of the run. Grammar (spaces optional around the operator)::

    GATE   := METRIC OP NUMBER [ "@" CONF ] [ "for" KEY "=" VALUE ]   (the two clauses in either order)
    METRIC := pass_rate | error_rate | inconclusive_rate | mean_score
    OP     := >= | > | <= | < | ==
    CONF   := 95% | 0.95          (a confidence level, above 50% and below 100%)
    KEY    := scene | model | group   (group: @pytest.mark.judge(group=...))

What is counted: the judged assertions (``assert_judge_*``; verdicts read as values are not
assertions), except those of xfail-marked tests that pytest counted as xfailed / xpassed (known
bad cases). A judge error or a missing verdict is never left out: it is an assertion that did
not pass (``pass_rate``), an error (``error_rate``) and, for ``mean_score``, the bottom of its scale. An
inconclusive assertion did not pass, whatever ``--judge-inconclusive`` did to its test.
``mean_score`` puts every score on a 5-point scale first (score / max_score x 5), so /10 and /5
verdicts never mix; pairwise rows have no single score and are left out of it.

With ``@ CONF`` a gate holds only if the whole two-sided CONF interval is on the right side of
the number: the Wilson interval for rates (``scipy.stats.binomtest(...).proportion_ci``), a
bootstrap (BCa, seeded, resampling cases) for the mean. ``==`` takes no confidence. A gate
that matches no assertion is ``no data``: it does not pass, it is reported (with a warning),
and it does not fail the run -- a ``-k`` run may leave a scoped gate without cases.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .counts import VALUE_ASSERTIONS, assertion_status, missing, row_status

METRICS = ("pass_rate", "error_rate", "inconclusive_rate", "mean_score")
SCOPES = ("scene", "model", "group")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
SCALE = 5
"""``mean_score`` is on this scale (the judge's default)."""
BOOTSTRAP_SEED = 20261201
"""The bootstrap is seeded: the same rows give the same interval in every run."""
EXAMPLE = "pass_rate >= 0.9 @ 95% for scene=翻译"

_HEAD = re.compile(r"^\s*(?P<metric>[a-z_]+)\s*(?P<op>>=|<=|==|>|<)\s*(?P<number>[-+0-9.eE]+)\s*(?P<rest>.*?)\s*$")
_CONF = re.compile(r"^@\s*(?P<conf>[0-9.]+)\s*(?P<pct>%?)\s*")
_SCOPE = re.compile(r"^for\s+(?P<key>[a-z_]+)\s*=\s*(?P<value>.+?)\s*(?=(?:@|$))")


class GateError(ValueError):
    """A gate expression that cannot be read; the message names it and says what is wrong."""


@dataclass(frozen=True)
class Gate:
    """One parsed gate."""

    text: str
    metric: str
    op: str
    number: float
    confidence: float | None = None
    scope: tuple[str, str] | None = None

    def selects(self, row: Mapping[str, Any]) -> bool:
        if self.scope is None:
            return True
        key, value = self.scope
        found = row.get(key)
        return not missing(found) and str(found) == value


@dataclass(frozen=True)
class GateResult:
    """A gate's outcome: ``held``, ``failed`` or ``no data``, with the figures that decided it."""

    gate: Gate
    status: str
    n: int
    value: float | None = None
    low: float | None = None
    high: float | None = None
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def text(self) -> str:
        """``pass_rate >= 0.9 @ 95%: 0.93 [0.85, 0.97] over 60 assertions -- held``."""
        if self.status == "no data":
            return f"{self.gate.text}: no data -- {self.reason}"
        interval = f" [{_fmt(self.low)}, {_fmt(self.high)}]" if self.gate.confidence is not None else ""
        word = "held" if self.status == "held" else "FAILED"
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.gate.text}: {_fmt(self.value)}{interval} over {_count(self.n)} -- {word}{why}"

    def to_dict(self) -> dict[str, Any]:
        gate = self.gate
        return {"gate": gate.text, "metric": gate.metric, "op": gate.op, "number": gate.number,
                "confidence": gate.confidence, "scope": dict([gate.scope]) if gate.scope else None,
                "status": self.status, "n": self.n, "value": _finite(self.value), "low": _finite(self.low),
                "high": _finite(self.high), "reason": self.reason}


def parse_gate(text: str) -> Gate:
    """Read one gate expression; :class:`GateError` says what is wrong with it."""
    text = (text or "").split(" #")[0].strip()  # an ini line may end with a comment
    if not text:
        raise GateError("an empty gate (e.g. an unset variable in --judge-gate \"$GATE\"); give an expression such "
                        f"as {EXAMPLE!r}")
    head = _HEAD.match(text)
    if head is None:
        raise GateError(f"cannot read gate {text!r}: expected METRIC OP NUMBER [@ CONF%] [for KEY=VALUE], "
                        f"e.g. {EXAMPLE!r}")
    metric, op, rest = head["metric"], head["op"], head["rest"]
    if metric not in METRICS:
        raise GateError(f"gate {text!r}: unknown metric {metric!r} (known: {', '.join(METRICS)})")
    try:
        number = float(head["number"])
    except ValueError:
        raise GateError(f"gate {text!r}: {head['number']!r} is not a number") from None
    if not math.isfinite(number):
        raise GateError(f"gate {text!r}: the number must be finite")
    if metric.endswith("_rate") and not 0 <= number <= 1:
        raise GateError(f"gate {text!r}: a rate is a share from 0 to 1 (e.g. 0.9 for 90%), got {number:g}")
    if metric == "mean_score" and not 0 <= number <= SCALE:
        raise GateError(f"gate {text!r}: mean_score is on a {SCALE}-point scale, got {number:g}")
    confidence: float | None = None
    scope: tuple[str, str] | None = None
    while rest:
        conf = _CONF.match(rest)
        if conf is not None and confidence is None:
            value = float(conf["conf"]) / (100 if conf["pct"] else 1)
            if not 0.5 < value < 1:
                raise GateError(f"gate {text!r}: a confidence must be above 50% and below 100% (e.g. @ 95%)")
            confidence, rest = value, rest[conf.end():]
            continue
        where = _SCOPE.match(rest)
        if where is not None and scope is None:
            if re.search(r"\bfor\s+[a-z_]+\s*=", where["value"]):
                raise GateError(f"gate {text!r}: one 'for KEY=VALUE' per gate (write one gate per scope)")
            if where["key"] not in SCOPES:
                raise GateError(f"gate {text!r}: cannot scope by {where['key']!r} (known: {', '.join(SCOPES)})")
            scope, rest = (where["key"], where["value"]), rest[where.end():].lstrip()
            continue
        raise GateError(f"gate {text!r}: cannot read {rest!r}; after the number may come '@ 95%' and "
                        "'for scene=NAME' (or model=, group=)")
    if confidence is not None and op == "==":
        raise GateError(f"gate {text!r}: '==' takes no confidence (an interval is never a single value)")
    return Gate(text.strip(), metric, op, number, confidence, scope)


def parse_gates(texts: Iterable[str]) -> list[Gate]:
    return [parse_gate(t) for t in texts]


# --------------------------------------------------------------------------- evaluation


def counted(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows gates count: judged assertions, not values, not known-bad (xfailed / xpassed) cases."""
    return [r for r in rows
            if r.get("assertion") not in VALUE_ASSERTIONS and row_status(r) not in ("xfailed", "xpassed")]


def evaluate(gates: Iterable[Gate], rows: Iterable[Mapping[str, Any]]) -> list[GateResult]:
    """Every gate over the run's report rows (dicts of :class:`~pytest_pai_judge.records.JudgeRecord`)."""
    pool = counted(rows)
    return [evaluate_one(gate, [r for r in pool if gate.selects(r)]) for gate in gates]


def evaluate_one(gate: Gate, rows: list[Mapping[str, Any]]) -> GateResult:
    if gate.metric == "mean_score":
        values = [_on_scale(r) for r in rows if r.get("kind") != "pairwise"]
        if not values:
            return GateResult(gate, "no data", 0, reason=_no_data(gate, "scored assertion"))
        mean = sum(values) / len(values)
        low, high = _mean_interval(values, gate.confidence) if gate.confidence is not None else (None, None)
        return _decide(gate, len(values), mean, low, high)
    if not rows:
        return GateResult(gate, "no data", 0, reason=_no_data(gate, "judged assertion"))
    hits = sum(1 for r in rows if _hit(gate.metric, r))
    low, high = _rate_interval(hits, len(rows), gate.confidence) if gate.confidence is not None else (None, None)
    return _decide(gate, len(rows), hits / len(rows), low, high)


def _hit(metric: str, row: Mapping[str, Any]) -> bool:
    status = assertion_status(row)
    if metric == "pass_rate":
        return status == "met"
    if metric == "error_rate":
        return status == "error"
    return status == "inconclusive"


def _on_scale(row: Mapping[str, Any]) -> float:
    """The row's score on the 5-point scale; the bottom of its scale (1 point) for a row without one: an
    error counts against the mean, as the paired regression counts it."""
    score: Any = row.get("score")
    top: Any = row.get("max_score")
    scale = float(top) if not missing(top) and top else float(SCALE)
    if missing(score) or not missing(row.get("error")):
        return 1.0 / scale * SCALE
    return float(score) / scale * SCALE


def _decide(gate: Gate, n: int, value: float, low: float | None, high: float | None) -> GateResult:
    compare = OPERATORS[gate.op]
    if gate.confidence is None:
        held = compare(value, gate.number)
        return GateResult(gate, "held" if held else "failed", n, value)
    # the side of the interval that must clear the number: the lower bound for >= / >, the upper for <= / <
    bound = low if gate.op in (">=", ">") else high
    if bound is None or math.isnan(bound):
        return GateResult(gate, "failed", n, value, low, high,
                          reason=f"too few cases for a {_pct(gate.confidence)} interval")
    held = compare(bound, gate.number)
    reason = ""
    if not held and compare(value, gate.number):
        side = "lower" if gate.op in (">=", ">") else "upper"
        reason = f"the value does, but the {side} bound of its {_pct(gate.confidence)} interval does not"
    return GateResult(gate, "held" if held else "failed", n, value, low, high, reason)


def _rate_interval(hits: int, n: int, confidence: float) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(hits, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


MIN_BOOTSTRAP_CASES = 5
"""A confidence gate on a mean needs this many cases: a bootstrap of 2 equal scores is a zero-width interval
that would "hold" at any confidence."""


def _mean_interval(values: list[float], confidence: float) -> tuple[float, float]:
    if len(values) < MIN_BOOTSTRAP_CASES:
        return math.nan, math.nan
    if len(set(values)) == 1:  # every case scored the same: the bootstrap has nothing to resample
        return values[0], values[0]
    import numpy as np
    from scipy.stats import bootstrap

    result = bootstrap((np.asarray(values),), np.mean, confidence_level=confidence, method="BCa",
                       random_state=BOOTSTRAP_SEED)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _no_data(gate: Gate, what: str) -> str:
    where = f" with {gate.scope[0]}={gate.scope[1]}" if gate.scope else ""
    return f"no {what}{where} in this run"


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.3g}"


def _pct(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def _count(n: int) -> str:
    return f"{n} assertion" + ("" if n == 1 else "s")
