"""What must hold of verdicts: the rule of each judge assertion, its failure text and its report rows.

Every assertion becomes an :class:`Expectation` (requests + the rule). Immediate, deferred and
batch mode all decide it with :meth:`Expectation.evaluate`, so the failure text is the same in
every mode; the expectation is JSON-safe, so it can wait on an xdist worker or in a spool file.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from . import errors, protocol
from .counts import cost_columns
from .decision import MAX_SAMPLES, Decision, decide_score, decide_winner, first_round, majority
from .errors import JudgeAssertionError
from .interning import shared
from .records import JudgeRecord
from .request import JudgeRequest
from .sampling import round_end

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


def contradictions(outcomes: Sequence[Outcome]) -> str | None:
    """The pairwise verdicts' notes where winner words and scores disagreed, one line each (None: none did)."""
    notes = dict.fromkeys(note for o in outcomes if not isinstance(o, BaseException)
                          and (note := getattr(o, "contradiction", None)))
    return "\n".join(notes) if notes else None


def failure_columns(outcomes: list[Outcome], per_request: Sequence[Sequence[Outcome]] | None = None
                    ) -> dict[str, Any]:
    """Report columns of an assertion or value read that got no verdict: why, and what its calls cost.

    An unreadable reply carries ``judge_usage`` / ``judge_cached`` (set by ``judging.mark_reply``); tokens add up
    over every call of the assertion, readable orders included. ``per_request`` (several samples): the
    outcomes per request, in sample order, so that samples drawn in one call count as one call.
    """
    failure = next(o for o in outcomes if isinstance(o, BaseException))
    return {"error": f"{type(failure).__name__}: {failure}",
            **cost_columns(per_request if per_request is not None else [[o] for o in outcomes])}


def _trim(text: str | None, limit: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines()) or "    (none)"


KINDS: dict[str, type[Expectation]] = {}
"""Assertion name -> the Expectation subclass that decides it (the judge checks in ``calibration`` / ``probes``)."""


@dataclass(slots=True)
class Expectation:
    """A judge assertion waiting for its verdicts. JSON-safe parts only, so it can cross xdist."""

    assertion: Literal["score", "prefers", "not_worse", "agrees", "unbiased"]
    requests: list[JudgeRequest]
    threshold: float | None
    nodeid: str
    run_mode: str = "immediate"
    labels: dict[str, str] = field(default_factory=dict)
    samples: int = 1
    """Samples per request (see :mod:`.decision`); 1 is the single-verdict rule."""
    confidence: float = 0.95
    inconclusive: str = "fail"
    """What an inconclusive decision does: fail, pass or skip (``--judge-inconclusive``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass names the assertions it decides (``ASSERTIONS``), so :meth:`from_dict` rebuilds it.

        (No ``super()`` here: under ``slots=True`` the dataclass is a new class that the zero-argument form
        does not know; ``object.__init_subclass__`` does nothing anyway.)"""
        for assertion in getattr(cls, "ASSERTIONS", ()):
            KINDS[assertion] = cls

    def to_dict(self) -> dict[str, Any]:
        return {"assertion": self.assertion, "requests": [r.to_dict() for r in self.requests],
                "threshold": self.threshold, "nodeid": self.nodeid, "run_mode": self.run_mode,
                "labels": dict(self.labels), "samples": self.samples, "confidence": self.confidence,
                "inconclusive": self.inconclusive}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Expectation:
        kind = KINDS.get(data["assertion"], cls) if cls is Expectation else cls
        made = kind(data["assertion"], [JudgeRequest.from_dict(r) for r in data["requests"]], data.get("threshold"),
                    data["nodeid"], data.get("run_mode", "immediate"), dict(data.get("labels") or {}),
                    int(data.get("samples") or 1), float(data.get("confidence") or 0.95),
                    str(data.get("inconclusive") or "fail"))
        made.restore(data)
        return made

    def restore(self, data: dict[str, Any]) -> None:
        """A subclass reads back what its ``to_dict`` added (the base keeps nothing more)."""

    def judge_check(self) -> dict[str, Any] | None:
        """A check of the judge itself (agreement with labels, bias probes): its figures once evaluated, for the
        reports' calibration section; None for an ordinary assertion."""
        return None

    # ------------------------------------------------------------------ several samples

    def rounds(self) -> list[list[int]]:
        """The sample numbers each round draws: first the fewest that can decide, then the rest."""
        first = first_round(self.samples, pairwise=self.assertion != "score", whole=round_end)
        return [list(range(first))] + ([list(range(first, self.samples))] if first < self.samples else [])

    def decided(self, per_request: list[list[Outcome]], *, final: bool) -> bool:
        """Whether the samples drawn so far decide the assertion (a failed call decides: it fails)."""
        if any(isinstance(o, errors.JudgeError) for samples in per_request for o in samples):
            return True
        return final or self._sampled_decision(per_request, final=False)[0] is not None

    def _sampled_decision(self, per_request: list[list[Outcome]], *, final: bool
                          ) -> tuple[str | None, Any, list[Verdict], list[float]]:
        """(decision, its numbers, the readable samples (forward order), their scores); decision None: undecided."""
        if self.assertion == "score":
            readable, scores = readable_scores(per_request[0])
            test = decide_score(scores, self.threshold or 0.0, confidence=self.confidence, final=final,
                                looks=len(self.rounds()))
            decision = None if test.decision is Decision.UNDECIDED else test.decision.value
            return decision, test, readable, scores
        pairs = readable_pairs(*per_request)
        votes = [consensus(f, b).winner for f, b in pairs]
        winner = decide_winner(votes, self.samples, final=final)
        scores = [s for f, b in pairs if (s := consensus(f, b).score1) is not None]
        if winner is None:
            return None, votes, [f for f, _ in pairs], scores
        if winner == "" and self.assertion == "prefers":
            return Decision.INCONCLUSIVE.value, votes, [f for f, _ in pairs], scores
        passed = winner == "1" if self.assertion == "prefers" else winner in ("1", "tie", "")
        return (Decision.MET if passed else Decision.NOT_MET).value, (winner or "tie", votes), \
            [f for f, _ in pairs], scores

    def result(self, outcomes: list[Any]) -> Any:
        """What the assertion returns when it holds: the verdict (a score) or the Comparison (pairwise).

        With several samples: the sample nearest the median, its ``score`` the median and ``samples``
        every sample's score; pairwise, the majority's winner with the first sample's two orders.
        """
        if self.samples == 1:
            return outcomes[0] if self.assertion == "score" else consensus(outcomes[0], outcomes[1])
        decision, numbers, readable, scores = self._sampled_decision(outcomes, final=True)
        if self.assertion == "score":
            return replace(nearest_median(readable, scores), score=statistics.median(scores), samples=tuple(scores))
        winner, votes = numbers if isinstance(numbers, tuple) else ("tie", numbers)
        return majority_comparison(readable_pairs(*outcomes), winner, votes)

    def evaluate(self, outcomes: list[Any]) -> tuple[list[JudgeRecord], BaseException | None]:
        """Records for the report and the exception the test must fail with (None = it holds).

        One sample: ``outcomes`` has one verdict (or exception) per request. Several: one list
        of samples per request.
        """
        if self.samples > 1:
            return self._evaluate_samples(outcomes)
        records, failure = self._evaluate_one(outcomes)
        for r in records:
            r.samples = 1
            r.scores = [r.score] if r.score is not None else []
            if r.passed is not None and r.error is None:
                r.decision = Decision.MET.value if r.passed else Decision.NOT_MET.value
        return records, failure

    def _evaluate_one(self, outcomes: list[Outcome]) -> tuple[list[JudgeRecord], BaseException | None]:
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
            max_score=request.max_score, threshold=self.threshold, ref_answer=fields.get("ref_answer"),
            scene_desc=fields.get("scene_desc"), metric=fields.get("metric"), score_desc=fields.get("score_desc"),
            steps=fields.get("steps"),
            template=json.dumps(request.messages, ensure_ascii=False) if request.kind == "custom" else None,
            params=shared(json.dumps(request.params, ensure_ascii=False, sort_keys=True, default=str))
            if request.params else None,
            confidence=self.confidence if self.samples > 1 else None, group=self.labels.get("group"))
        if verdict is not None:
            record.score = shared(verdict.score if verdict.score is not None else verdict.score1)
            record.score2 = shared(verdict.score2 if verdict.score is None else None)
            record.winner = verdict.winner
            record.criteria = {shared(c.name or f"criterion_{i + 1}"): shared(c.score)
                               for i, c in enumerate(verdict.criteria)}
            if verdict.mode == "pairwise":
                record.criteria2 = {shared(c.name or f"criterion_{i + 1}"): shared(c.score2)
                                    for i, c in enumerate(verdict.criteria)}
            record.reasons = verdict.reasons
            record.contradiction = verdict.contradiction
            for key, value in cost_columns([[verdict]]).items():
                setattr(record, key, value)
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
        record = self.record(request, forward, passed=passed, winner=result.winner, score=result.score1,
                              score2=result.score2, contradiction=contradictions([forward, backward]),
                              **cost_columns([[forward], [backward]]))
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

    def _evaluate_samples(self, per_request: list[list[Outcome]]) -> tuple[list[JudgeRecord], BaseException | None]:
        request = self.requests[0]
        flat = [o for samples in per_request for o in samples]
        drawn = len(per_request[0])
        decision, numbers, readable, scores = self._sampled_decision(per_request, final=True)
        failure = no_verdict(flat, readable)
        if failure is not None:  # no verdict to decide on: fail with why, never pass
            return [self.record(request, None, samples=drawn, **failure_columns(flat, per_request))], failure
        shown = nearest_median(readable, scores) if self.assertion == "score" and scores else readable[0]
        spread = spread_of(scores)
        passed = decision == Decision.MET.value or (decision == Decision.INCONCLUSIVE.value
                                                     and self.inconclusive == "pass")
        extra: dict[str, Any] = {}
        if self.assertion != "score":
            winner, _votes = numbers if isinstance(numbers, tuple) else ("tie", numbers)
            extra = {"winner": winner, "contradiction": contradictions(flat),
                     "score2": median_of([consensus(f, b).score2 for f, b in readable_pairs(*per_request)])}
        record = self.record(request, shown, passed=passed, score=statistics.median(scores) if scores else None,
                             samples=drawn, scores=scores, spread=spread, decision=decision,
                             **cost_columns(per_request), **extra)
        if decision == Decision.MET.value:
            return [record], None
        text = sampled_failure_text(self, decision, numbers, scores, shown, drawn)
        if decision == Decision.INCONCLUSIVE.value:
            if self.inconclusive == "pass":
                return [record], None
            if self.inconclusive == "skip":
                import pytest

                return [record], pytest.skip.Exception(text)
            return [record], errors.JudgeInconclusive(text)
        return [record], JudgeAssertionError(text)


def readable_scores(samples: list[Outcome]) -> tuple[list[Verdict], list[float]]:
    """The samples with a score, and their scores (an unreadable sample is missing data, not a vote)."""
    readable = [o for o in samples if not isinstance(o, BaseException) and o.score is not None]
    return readable, [float(v.score) for v in readable if v.score is not None]


def readable_pairs(forward: list[Outcome], backward: list[Outcome]) -> list[tuple[Verdict, Verdict]]:
    """Pairwise samples whose two orders both have a verdict."""
    return [(f, b) for f, b in zip(forward, backward)
            if not isinstance(f, BaseException) and not isinstance(b, BaseException)]


def no_verdict(flat: list[Outcome], readable: list[Any]) -> BaseException | None:
    """Why several samples give nothing to decide on: a failed call, or no readable sample at all (else None)."""
    failed_call = next((o for o in flat if isinstance(o, errors.JudgeError)), None)
    if failed_call is not None or readable:
        return failed_call
    return next(o for o in flat if isinstance(o, BaseException))


def nearest_median(readable: list[Verdict], scores: list[float]) -> Verdict:
    """The sample that speaks for a case: the one whose score is nearest the samples' median."""
    middle = statistics.median(scores)
    return min(readable, key=lambda v: abs(float(v.score or 0) - middle))


def majority_comparison(pairs: list[tuple[Verdict, Verdict]], winner: str | None, votes: Sequence[str]) -> Comparison:
    """The samples' Comparison: the majority's winner (no majority: a tie) with the first sample's two orders."""
    majority_winner: Literal["1", "2", "tie"] = "1" if winner == "1" else "2" if winner == "2" else "tie"
    return Comparison(majority_winner, len(set(votes)) == 1, *pairs[0])


def spread_of(scores: list[float]) -> float:
    return statistics.stdev(scores) if len(scores) > 1 else 0.0


def median_of(values: Sequence[float | None]) -> float | None:
    """The median of the scores present (the row's ``score`` of several samples is a median too)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def sampled_failure_text(expectation: Expectation, decision: str | None, numbers: Any, scores: list[float],
                         shown: Verdict, drawn: int) -> str:
    """What a reviewer needs about a multi-sample decision: every sample, the aggregate, the rule's verdict."""
    request = expectation.requests[0]
    level = f"{expectation.confidence * 100:g}% confidence"
    listed = ", ".join(_fmt(s) for s in scores) or "none readable"
    unreadable = drawn - len(scores)
    missing = f"; {unreadable} unreadable (missing data, not votes)" if unreadable > 0 else ""
    if expectation.assertion == "score":
        head = (f"judge score: {decision} after {drawn} of {expectation.samples} samples against the minimum "
                f"{_fmt(expectation.threshold)} at {level} ({request.describe()})")
        middle = _fmt(statistics.median(scores)) if scores else "n/a"
        detail = [f"  sample scores (out of {shown.max_score}): {listed}; median {middle}, mean {numbers.mean:.2f}, "
                  f"spread (sd) {numbers.spread:.2f}{missing}"]
    else:
        winner, votes = numbers if isinstance(numbers, tuple) else ("no majority", numbers)
        first, second = expectation.labels.get("first", "answer 1"), expectation.labels.get("second", "answer 2")
        names = {"1": first, "2": second, "tie": "tie", "": "no majority"}
        head = (f"judge verdict: {names.get(winner, winner)} ({decision}) after {drawn} of {expectation.samples} "
                f"samples, each in both orders ({request.describe()})")
        detail = [f"  votes: {', '.join(names.get(v, v) for v in votes)} (a win needs "
                  f"{majority(expectation.samples)} of {expectation.samples}; orders that disagree vote tie)",
                  f"  {first}'s scores: {listed}{missing}"]
    lines = [head, *detail, f"  question: {_trim(request.question, TEXT_CHARS)}"]
    for name, label in (("answer", "answer"), ("answer1", expectation.labels.get("first", "answer 1")),
                        ("answer2", expectation.labels.get("second", "answer 2")), ("ref_answer", "ref")):
        if request.fields.get(name):
            lines.append(f"  {label}: {_trim(request.fields.get(name), TEXT_CHARS)}")
    lines += ["  judge's reasons (the sample nearest the median):",
              _indent(_trim(shown.reasons or shown.raw, REASON_CHARS))]
    if decision == Decision.INCONCLUSIVE.value:
        lines.append("  the samples could not tell at this confidence: raise samples= or review the case")
    lines.append(f"  rerun only this test: pytest \"{expectation.labels.get('rerun', expectation.nodeid)}\"")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


# --------------------------------------------------------------------------- building expectations


def samples_of(samples: int | None, settings: Settings, request: JudgeRequest) -> int:
    """``samples=`` of a call, else the test's setting; refused when it cannot be honoured.

    A run-wide or marker setting leaves a call that draws ``n`` choices itself at one sample.
    """
    __tracebackhide__ = True
    if samples is None and request.params.get("n") not in (None, 1):
        return 1
    value = settings.samples if samples is None else samples
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SAMPLES:
        raise ValueError(f"samples must be a whole number from 1 to {MAX_SAMPLES}, got {value!r}")
    if value > 1 and request.params.get("n") not in (None, 1):
        raise ValueError(f"samples={value} draws its samples with n itself; do not pass n= as well")
    return value


def score_expectation(settings: Settings, item: pytest.Item | None, question: str, answer: str,
                      minimum: float | None, model: str | None, fields: dict[str, Any], *,
                      samples: int | None = None) -> Expectation:
    """``assert_judge_score``'s request and threshold; a threshold that can never fail or pass is refused."""
    __tracebackhide__ = True
    request = JudgeRequest.single(question, answer, model=model or settings.model, **fields)
    return _scored(settings, item, request, minimum, samples)


def custom_expectation(settings: Settings, item: pytest.Item | None, messages: list[dict[str, Any]] | str,
                       minimum: float | None, model: str | None, max_score: int | None, params: dict[str, Any], *,
                       samples: int | None = None) -> Expectation:
    """``assert_judge_custom``: your own template, its score read from the reply's prose."""
    __tracebackhide__ = True
    request = JudgeRequest.custom(messages, model=model or settings.model, **params)
    if max_score is not None and max_score != protocol.DEFAULT_MAX_SCORE:
        request.fields["max_score"] = max_score
    return _scored(settings, item, request, minimum, samples)


def _scored(settings: Settings, item: pytest.Item | None, request: JudgeRequest, minimum: float | None,
            samples: int | None) -> Expectation:
    __tracebackhide__ = True
    count = samples_of(samples, settings, request)
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
        # the request check names max_score
        return Expectation("score", [request], threshold, nodeid_of(item), samples=count)
    if threshold > max_score:
        raise ValueError(f"minimum score {threshold:g} is above max_score {request.max_score}: this assertion could "
                         "never pass (check min=, @pytest.mark.judge(min_score=...), --judge-min-score)")
    return Expectation("score", [request], threshold, nodeid_of(item), samples=count)


def pairwise_expectation(settings: Settings, item: pytest.Item | None, assertion: str, question: str,
                         first: str, second: str, model: str | None, fields: dict[str, Any],
                         labels: dict[str, str], *, samples: int | None = None) -> Expectation:
    """Both orders of a pairwise assertion, the candidate first in ``requests[0]``."""
    __tracebackhide__ = True
    model = model or settings.model
    forward = JudgeRequest.pairwise(question, first, second, model=model, **fields)
    backward = JudgeRequest.pairwise(question, second, first, model=model, **fields)
    return Expectation(assertion, [forward, backward], None, nodeid_of(item), labels=labels,  # type: ignore[arg-type]
                       samples=samples_of(samples, settings, forward))


def nodeid_of(item: pytest.Item | None) -> str:
    return item.nodeid if item is not None else "<outside a test>"
