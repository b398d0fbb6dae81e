"""What must hold of verdicts: the rule of each judge assertion, its failure text and its report rows.

Every assertion becomes an :class:`Expectation` (requests + the rule). Immediate, deferred and
batch mode all decide it with :meth:`Expectation.evaluate`, so the failure text is the same in
every mode; the expectation is JSON-safe, so it can wait on an xdist worker or in a spool file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .errors import JudgeAssertionError
from .records import JudgeRecord
from .request import JudgeRequest

if TYPE_CHECKING:  # pragma: no cover
    import pytest

    from .options import Settings
    from .verdict import Verdict

Outcome = Any  # a Verdict, or the exception that stands in its place (JudgeError / UnreadableVerdict)
REASON_CHARS = 700
TEXT_CHARS = 300


@dataclass(frozen=True)
class Comparison:
    """A pairwise judgement made in both orders; a win counts only when both orders agree."""

    winner: Literal["1", "2", "tie"]
    consistent: bool
    forward: Verdict
    backward: Verdict

    @property
    def score1(self) -> float | None:
        return _mean(self.forward.score1, self.backward.score2)

    @property
    def score2(self) -> float | None:
        return _mean(self.forward.score2, self.backward.score1)


def _mean(a: float | None, b: float | None) -> float | None:
    values = [v for v in (a, b) if v is not None]
    return sum(values) / len(values) if values else None


def consensus(forward: Verdict, backward: Verdict) -> Comparison:
    """Combine A-vs-B and B-vs-A: agreement wins, disagreement (position bias) is a tie."""
    swapped = {"1": "2", "2": "1", "tie": "tie", None: None}[backward.winner]
    if forward.winner == swapped and forward.winner is not None:
        return Comparison(forward.winner, True, forward, backward)
    return Comparison("tie", False, forward, backward)


def failure_columns(outcomes: list[Outcome]) -> dict[str, Any]:
    """Report columns of an assertion or value read that got no verdict: why, and what its calls cost.

    An unreadable reply carries ``judge_usage`` / ``judge_cached`` (set by the session); tokens add up
    over every call of the assertion, readable orders included.
    """
    failure = next(o for o in outcomes if isinstance(o, BaseException))
    cached = all(bool(getattr(o, "judge_cached", getattr(o, "cached", False))) for o in outcomes)
    tokens = sum(int(((getattr(o, "judge_usage", None) if isinstance(o, BaseException) else o.usage) or {})
                     .get("total_tokens") or 0) for o in outcomes)
    return {"error": f"{type(failure).__name__}: {failure}", "cached": cached, "tokens": tokens}


def _trim(text: str | None, limit: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines()) or "    (none)"


@dataclass
class Expectation:
    """A judge assertion waiting for its verdicts. JSON-safe parts only, so it can cross xdist."""

    assertion: Literal["score", "prefers", "not_worse"]
    requests: list[JudgeRequest]
    threshold: float | None
    nodeid: str
    run_mode: str = "immediate"
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"assertion": self.assertion, "requests": [r.to_dict() for r in self.requests],
                "threshold": self.threshold, "nodeid": self.nodeid, "run_mode": self.run_mode,
                "labels": dict(self.labels)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Expectation:
        return cls(data["assertion"], [JudgeRequest.from_dict(r) for r in data["requests"]], data.get("threshold"),
                   data["nodeid"], data.get("run_mode", "immediate"), dict(data.get("labels") or {}))

    def evaluate(self, outcomes: list[Outcome]) -> tuple[list[JudgeRecord], BaseException | None]:
        """Records for the report and the exception the test must fail with (None = it holds)."""
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failure is not None:
            return [self.record(self.requests[0], None, **failure_columns(outcomes))], failure
        if self.assertion == "score":
            return self._evaluate_score(outcomes[0])
        return self._evaluate_pairwise(outcomes[0], outcomes[1])

    def record(self, request: JudgeRequest, verdict: Verdict | None, **extra: Any) -> JudgeRecord:
        fields = request.fields
        record = JudgeRecord(
            nodeid=self.nodeid, run_mode=self.run_mode, kind=request.kind, assertion=self.assertion,
            model=request.model, scene=fields.get("scene"), question=request.question,
            answer=fields.get("answer") or fields.get("answer1"), answer2=fields.get("answer2"),
            max_score=request.max_score, threshold=self.threshold)
        if verdict is not None:
            record.score = verdict.score if verdict.score is not None else verdict.score1
            record.score2 = verdict.score2 if verdict.score is None else None
            record.winner = verdict.winner
            record.criteria = {c.name or f"criterion_{i + 1}": c.score for i, c in enumerate(verdict.criteria)}
            record.reasons = verdict.reasons
            record.tokens = int((verdict.usage or {}).get("total_tokens") or 0)
            record.cached = verdict.cached
            record.latency_s = verdict.latency_s
            if verdict.model:
                record.model = verdict.model
        for key, value in extra.items():
            setattr(record, key, value)
        return record

    def _evaluate_score(self, verdict: Verdict) -> tuple[list[JudgeRecord], BaseException | None]:
        request = self.requests[0]
        passed = self.threshold is None or (verdict.score is not None and verdict.score >= self.threshold)
        record = self.record(request, verdict, passed=passed)
        if passed:
            return [record], None
        fields = request.fields
        lines = [f"judge score {_fmt(verdict.score)}/{verdict.max_score} is below the minimum {_fmt(self.threshold)}"
                 f" ({request.describe()}{', cached verdict' if verdict.cached else ''})",
                 f"  question: {_trim(request.question, TEXT_CHARS)}",
                 f"  answer:   {_trim(fields.get('answer'), TEXT_CHARS)}"]
        if fields.get("ref_answer"):
            lines.append(f"  ref:      {_trim(fields.get('ref_answer'), TEXT_CHARS)}")
        if verdict.criteria:
            marks = ", ".join(f"{c.name or '?'} {_fmt(c.score)}" for c in verdict.criteria)
            lines.append(f"  criteria: {_trim(marks, TEXT_CHARS)}")
        lines += ["  judge's reasons:", _indent(_trim(verdict.reasons or verdict.raw, REASON_CHARS)),
                  f"  rerun only this test: pytest \"{self.labels.get('rerun', self.nodeid)}\""]
        return [record], JudgeAssertionError("\n".join(lines))

    def _evaluate_pairwise(self, forward: Verdict, backward: Verdict
                           ) -> tuple[list[JudgeRecord], BaseException | None]:
        result = consensus(forward, backward)
        # requests[0] puts the candidate ("better" / "candidate") first.
        if self.assertion == "prefers":
            passed = result.winner == "1"
            wanted = "the first answer to win in both orders"
        else:
            passed = result.winner in ("1", "tie")
            wanted = "the candidate to win or tie"
        request = self.requests[0]
        tokens = sum(int((v.usage or {}).get("total_tokens") or 0) for v in (forward, backward))
        record = self.record(request, forward, passed=passed, winner=result.winner, score=result.score1,
                              score2=result.score2, tokens=tokens, cached=forward.cached and backward.cached)
        if passed:
            return [record], None
        first, second = self.labels.get("first", "answer 1"), self.labels.get("second", "answer 2")
        names = {"1": first, "2": second, "tie": "tie"}
        order_note = ("both orders agree" if result.consistent else
                      f"the orders disagree (A-B: {names.get(forward.winner or '', '?')}, "
                      f"B-A: {names.get({'1': '2', '2': '1'}.get(backward.winner or '', 'tie'), 'tie')}) "
                      "- position bias, counted as a tie")
        lines = [f"judge verdict: {names[result.winner]} ({order_note}); expected {wanted} ({request.describe()})",
                 f"  scores: {first} {_fmt(result.score1)}, {second} {_fmt(result.score2)} "
                 f"(max {forward.max_score})",
                 f"  question: {_trim(request.question, TEXT_CHARS)}",
                 f"  {first}: {_trim(request.fields.get('answer1'), TEXT_CHARS)}",
                 f"  {second}: {_trim(request.fields.get('answer2'), TEXT_CHARS)}",
                 "  judge's reasons (first order):", _indent(_trim(forward.reasons or forward.raw, REASON_CHARS)),
                 f"  rerun only this test: pytest \"{self.labels.get('rerun', self.nodeid)}\""]
        return [record], JudgeAssertionError("\n".join(lines))


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


# --------------------------------------------------------------------------- building expectations


def score_expectation(settings: Settings, item: pytest.Item | None, question: str, answer: str,
                      minimum: float | None, model: str | None, fields: dict[str, Any]) -> Expectation:
    """``assert_judge_score``'s request and threshold; a threshold that can never fail or pass is refused."""
    request = JudgeRequest.single(question, answer, model=model or settings.model, **fields)
    threshold = minimum if minimum is not None else settings.min_score
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"min must be a number, got {type(threshold).__name__} {threshold!r}")
    if not threshold > 0:
        raise ValueError(f"min must be a positive number, got {threshold!r}: this assertion could never fail")
    threshold = float(threshold)
    try:
        max_score = request.max_score
    except (TypeError, ValueError):
        max_score = None
    if max_score is None or not 1 <= max_score <= 100 or isinstance(request.fields.get("max_score"), bool):
        return Expectation("score", [request], threshold, nodeid_of(item))  # the request check names max_score
    if threshold > max_score:
        raise ValueError(f"minimum score {threshold:g} is above max_score {request.max_score}: this assertion could "
                         "never pass (check min=, @pytest.mark.judge(min_score=...), --judge-min-score)")
    return Expectation("score", [request], threshold, nodeid_of(item))


def pairwise_expectation(settings: Settings, item: pytest.Item | None, assertion: str, question: str,
                         first: str, second: str, model: str | None, fields: dict[str, Any],
                         labels: dict[str, str]) -> Expectation:
    """Both orders of a pairwise assertion, the candidate first in ``requests[0]``."""
    model = model or settings.model
    forward = JudgeRequest.pairwise(question, first, second, model=model, **fields)
    backward = JudgeRequest.pairwise(question, second, first, model=model, **fields)
    return Expectation(assertion, [forward, backward], None, nodeid_of(item), labels=labels)  # type: ignore[arg-type]


def nodeid_of(item: pytest.Item | None) -> str:
    return item.nodeid if item is not None else "<outside a test>"
