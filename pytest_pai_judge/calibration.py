"""Check the judge itself: judge every row of a labelled set and measure agreement with the people.

``assert_judge_agrees(data, min_kappa=...)`` fails the test with a table of the figures and the
worst disagreements; ``judge.agreement(data, ...)`` returns the :class:`Agreement` without
asserting. Rows are read with :func:`~pytest_pai_judge.dataset_cases.cases` (a path, a DataFrame
or a ``datasets.Dataset``, the same column keywords) and become ONE expectation
(:class:`AgreementExpectation`) whose requests are every row's: immediate mode judges them in
turn, deferred mode concurrently, batch mode in the run's one batch job, each cached like any
verdict. ``samples=`` draws several verdicts per row (the row's judge score is their median; a
pairwise row's winner their strict majority). The figures come from
:mod:`pytest_pai_judge.agreement`. An unreadable verdict is a disagreement, never dropped; a call
that failed (no answer at all) fails the assertion, as it fails any judge assertion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from . import errors
from .agreement import Figure, pairwise_agreement, score_agreement
from .counts import cost_columns
from .dataset_cases import cases
from .decision import decide_winner
from .errors import JudgeAssertionError
from .expectation import (
    Expectation,
    Outcome,
    consensus,
    failure_columns,
    median_of,
    nearest_median,
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

SHOWN_DISAGREEMENTS = 5
REASON_CHARS = 300
MINIMA = {"min_kappa": "kappa", "min_spearman": "spearman", "min_exact": "exact", "min_within_one": "within_one",
          "min_tpr": "tpr", "min_tnr": "tnr", "min_agreement": "agreement",
          "min_position_consistency": "position_consistency"}
"""``assert_judge_agrees`` keyword -> the figure it bounds from below."""


@dataclass(frozen=True)
class LabelledRow:
    """One row: what the human said, what the judge said (None: no verdict), and why."""

    case: str
    question: str
    human: Any
    judge: Any
    reasons: str = ""
    error: str | None = None
    consistent: bool = True
    """Pairwise: the judge gave the same verdict in both orders (in most samples, with several)."""

    def to_dict(self) -> dict[str, Any]:
        reasons = " ".join(self.reasons.split())
        return {"case": self.case, "question": self.question, "human": self.human, "judge": self.judge,
                "reasons": reasons[:REASON_CHARS] + ("…" if len(reasons) > REASON_CHARS else ""),
                "error": self.error, "consistent": self.consistent}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelledRow:
        return cls(str(data["case"]), str(data.get("question") or ""), data.get("human"), data.get("judge"),
                   str(data.get("reasons") or ""), data.get("error"), bool(data.get("consistent", True)))


@dataclass(frozen=True)
class Agreement:
    """The figures of a labelled set (see :mod:`pytest_pai_judge.agreement`) and its rows."""

    kind: str
    """score (human scores) or pairwise (human winners)."""
    figures: dict[str, Figure]
    rows: list[LabelledRow]
    confusion: dict[tuple[Any, Any], int] = field(default_factory=dict)
    """(human score, judge score) -> rows; judge score 0 is "no verdict" (pairwise: winners, "none")."""
    scale: int = 5
    nodeid: str = ""
    """The test that measured it."""
    model: str = ""
    threshold: float | None = None
    """The pass mark of the true-positive / -negative rates (``threshold=``), if given."""
    samples: int = 1
    misses: tuple[str, ...] = ()
    """The bounds the figures missed (``assert_judge_agrees``' minima); empty when they held or none were given."""
    bounds: dict[str, float] = field(default_factory=dict)
    """The bounds asked for (``min_kappa=0.6`` -> ``{"min_kappa": 0.6}``); empty for ``judge.agreement``."""
    error: str | None = None
    """Set when calls got no answer at all (a judge error): then the figures measure nothing and no bound is
    checked (the assertion fails with that error)."""

    def __getitem__(self, name: str) -> Figure:
        return self.figures[name]

    def worst(self, k: int = SHOWN_DISAGREEMENTS) -> list[LabelledRow]:
        """The rows the judge disagreed with most (no verdict first, then the largest gap)."""
        def gap(row: LabelledRow) -> float:
            if row.judge is None:
                return float("inf")
            if self.kind == "pairwise":
                return 0.0 if str(row.human) == str(row.judge) else 1.0
            return abs(float(row.human) - float(row.judge))
        return [r for r in sorted(self.rows, key=gap, reverse=True) if gap(r) > 0][:k]

    def text(self) -> str:
        """The figures, one per line, then the worst disagreements."""
        if self.error:
            return f"  not measured: {self.error}"
        lines = [f"  {f.text()}" for f in self.figures.values()]
        worst = self.worst()
        if worst:
            lines.append("  worst disagreements (case: human vs judge):")
            for r in worst:
                said = "no verdict" + (f" ({r.error})" if r.error else "") if r.judge is None else _shown(r.judge)
                reasons = " ".join(r.reasons.split())
                why = f" -- {reasons[:160]}{'…' if len(reasons) > 160 else ''}" if reasons else ""
                lines.append(f"    {r.case}: human {_shown(r.human)} vs judge {said}{why}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: what crosses from an xdist worker and what the reports' calibration sidecar holds."""
        return {"check": "agreement", "kind": self.kind, "nodeid": self.nodeid, "model": self.model,
                "scale": self.scale, "threshold": self.threshold, "samples": self.samples,
                "misses": list(self.misses), "bounds": dict(self.bounds), "error": self.error,
                "figures": {k: f.to_dict() for k, f in self.figures.items()},
                "confusion": [[h, j, n] for (h, j), n in sorted(self.confusion.items(), key=str)],
                "rows": [r.to_dict() for r in self.rows]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Agreement:
        figures = {k: Figure(f["name"], f.get("value"), f.get("low"), f.get("high"), int(f.get("n") or 0))
                   for k, f in data["figures"].items()}
        return cls(data["kind"], figures, [LabelledRow.from_dict(r) for r in data.get("rows") or []],
                   {(h, j): int(n) for h, j, n in data.get("confusion") or []}, int(data.get("scale") or 5),
                   str(data.get("nodeid") or ""), str(data.get("model") or ""), data.get("threshold"),
                   int(data.get("samples") or 1), tuple(data.get("misses") or ()), dict(data.get("bounds") or {}),
                   data.get("error"))


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(slots=True)
class AgreementExpectation(Expectation):
    """A labelled set waiting for its verdicts: every row's request(s), the labels, and the bounds.

    ``requests`` holds one request per row (pairwise: both orders, row after row); ``evaluate``
    measures the agreement (kept in ``measured``) and fails when a bound is missed.
    """

    ASSERTIONS: ClassVar[tuple[str, ...]] = ("agrees",)
    kind: str = "score"
    cases: list[str] = field(default_factory=list)
    human: list[Any] = field(default_factory=list)
    scale: int = 5
    cut: float | None = None
    """``threshold=``: the pass mark of the judge's true-positive / -negative rates."""
    minima: dict[str, float] = field(default_factory=dict)
    measured: Agreement | None = None
    """Set by :meth:`evaluate` (not sent across xdist: the controller measures again)."""

    def to_dict(self) -> dict[str, Any]:
        return {**Expectation.to_dict(self), "kind": self.kind, "cases": list(self.cases), "human": list(self.human),
                "scale": self.scale, "cut": self.cut, "minima": dict(self.minima)}

    def restore(self, data: dict[str, Any]) -> None:
        self.kind, self.cases, self.human = str(data["kind"]), list(data["cases"]), list(data["human"])
        self.scale, self.cut, self.minima = int(data["scale"]), data.get("cut"), dict(data.get("minima") or {})

    def rounds(self) -> list[list[int]]:
        return [list(range(self.samples))]  # no threshold to stop at: every sample is drawn

    def judge_check(self) -> dict[str, Any] | None:
        return self.measured.to_dict() if self.measured is not None else None

    def evaluate(self, outcomes: list[Any]) -> tuple[list[Any], BaseException | None]:
        per_request: list[list[Outcome]] = outcomes if self.samples > 1 else [[o] for o in outcomes]
        width = 2 if self.kind == "pairwise" else 1
        rows, records = [], []
        for index, case in enumerate(self.cases):
            drawn = per_request[index * width:(index + 1) * width]
            row, record = (self._pairwise_row if width == 2 else self._score_row)(index, case, drawn)
            rows.append(row)
            records.append(record)
        for record, human, case in zip(records, self.human, self.cases):
            record.human, record.case = str(_shown(human)), case
        agreement = self._measure(rows)
        failed = [o for samples in per_request for o in samples if isinstance(o, errors.JudgeError)]
        if failed:  # no answer at all for some rows: the figures would blame the judge for the connection
            error = (f"{len(failed)} of {len(self.requests) * self.samples} calls got no answer: "
                     f"{type(failed[0]).__name__}: {_first_line(str(failed[0]))}")
            self.measured = Agreement(**{**_fields(agreement), "bounds": dict(self.minima), "error": error})
            return records, failed[0]
        misses = tuple(check(agreement, self.minima))
        agreement = self.measured = Agreement(**{**_fields(agreement), "misses": misses, "bounds": dict(self.minima)})
        if misses:
            return records, JudgeAssertionError(
                f"the judge disagrees with the labels: {'; '.join(misses)} ({len(rows)} labelled rows)\n"
                f"{agreement.text()}\n  look at the disagreements (and the judge's reasons) before moving the bound; "
                f"if the judge's model, scene or template changed, this is what changed with it\n"
                f"  rerun only this test: pytest \"{self.labels.get('rerun', self.nodeid)}\"")
        return records, None

    def _score_row(self, index: int, case: str, drawn: list[list[Outcome]]) -> tuple[LabelledRow, Any]:
        request, samples = self.requests[index], drawn[0]
        readable, scores = readable_scores(samples)
        human = float(self.human[index])
        if not scores:
            columns = failure_columns(samples, drawn)
            return (LabelledRow(case, request.question or "", human, None, error=_first_line(columns["error"])),
                    self.record(request, None, samples=len(samples), **columns))
        shown = nearest_median(readable, scores)
        judged = median_of(scores)
        record = self.record(request, shown, samples=len(samples), scores=scores, score=judged,
                             spread=spread_of(scores), **cost_columns(drawn))
        return LabelledRow(case, request.question or "", human, judged, shown.reasons), record

    def _pairwise_row(self, index: int, case: str, drawn: list[list[Outcome]]) -> tuple[LabelledRow, Any]:
        request = self.requests[2 * index]
        pairs = readable_pairs(drawn[0], drawn[1])
        human = str(self.human[index])
        if not pairs:
            flat = [o for samples in drawn for o in samples]
            columns = failure_columns(flat, drawn)
            return (LabelledRow(case, request.question or "", human, None, error=_first_line(columns["error"]),
                                consistent=False),
                    self.record(request, None, samples=len(drawn[0]), **columns))
        results = [consensus(f, b) for f, b in pairs]
        votes = [r.winner for r in results]
        winner = votes[0] if self.samples == 1 else (decide_winner(votes, self.samples, final=True) or "tie")
        consistent = sum(r.consistent for r in results) * 2 > len(results)
        scores = [s for r in results if (s := r.score1) is not None]
        record = self.record(request, pairs[0][0], winner=winner, samples=len(drawn[0]), scores=scores,
                             score=median_of(scores), score2=median_of([r.score2 for r in results]),
                             spread=spread_of(scores), **cost_columns(drawn))
        row = LabelledRow(case, request.question or "", human, winner, pairs[0][0].reasons, consistent=consistent)
        return row, record

    def _measure(self, rows: list[LabelledRow]) -> Agreement:
        model = self.requests[0].model if self.requests else ""
        if self.kind == "pairwise":
            figures = pairwise_agreement([r.human for r in rows], [r.judge for r in rows],
                                         [r.consistent for r in rows], self.confidence)
            confusion: dict[tuple[Any, Any], int] = {}
            for r in rows:
                cell = (str(r.human), "none" if r.judge is None else str(r.judge))
                confusion[cell] = confusion.get(cell, 0) + 1
            return Agreement("pairwise", figures, rows, confusion, self.scale, self.nodeid, model, None, self.samples)
        result = score_agreement([float(r.human) for r in rows], [r.judge for r in rows], scale=self.scale,
                                 threshold=self.cut, confidence=self.confidence)
        return Agreement("score", result.figures, rows, result.confusion, self.scale, self.nodeid, model, self.cut,
                         self.samples)


def _fields(agreement: Agreement) -> dict[str, Any]:
    return {name: getattr(agreement, name) for name in Agreement.__dataclass_fields__}


def _first_line(text: str) -> str:
    return text.splitlines()[0][:200] if text else ""


def labelled_set(settings: Settings, item: pytest.Item | None, data: Any, *, question: str = "question",
                 answer: str = "answer", ref_answer: str | None = "ref_answer", human_score: str = "human_score",
                 answer1: str | None = None, answer2: str | None = None, human_winner: str = "human_winner",
                 id: str | None = None, threshold: float | None = None, model: str | None = None,  # noqa: A002
                 samples: int | None = None, minima: dict[str, float | None] | None = None,
                 **fields: Any) -> AgreementExpectation:
    """The expectation of a labelled set; pairwise when ``answer1`` / ``answer2`` are named."""
    __tracebackhide__ = True
    typos = [k for k in fields if k.startswith("min_")]
    if typos:
        raise TypeError(f"unknown bound {typos[0]}=; the bounds are {', '.join(MINIMA)}")
    model = model or settings.model
    bounds = {k: float(v) for k, v in (minima or {}).items() if v is not None}
    pairwise = answer1 is not None or answer2 is not None
    requests: list[JudgeRequest] = []
    ids: list[str] = []
    human: list[Any] = []
    scale = int(fields.get("max_score") or 5)
    if pairwise:
        for case, row in _rows(data, ref_answer, question=question, id=id, answer1=answer1 or "answer1",
                               answer2=answer2 or "answer2", human_winner=human_winner):
            q, first, second, ref = row["question"], row["answer1"], row["answer2"], row["ref_answer"]
            winner = str(row["human_winner"])
            if winner not in ("1", "2", "tie"):
                raise ValueError(f"labelled row {case!r}: {human_winner} must be '1', '2' or 'tie', got {winner!r}")
            requests += [JudgeRequest.pairwise(q, first, second, model=model, ref_answer=ref, **fields),
                         JudgeRequest.pairwise(q, second, first, model=model, ref_answer=ref, **fields)]
            ids.append(case)
            human.append(winner)
    else:
        for case, row in _rows(data, ref_answer, question=question, answer=answer, id=id, human_score=human_score):
            requests.append(JudgeRequest.single(row["question"], row["answer"], model=model,
                                                ref_answer=row["ref_answer"], **fields))
            ids.append(case)
            human.append(_human_score(row["human_score"], case, human_score, scale))
    if not requests:
        raise ValueError("the labelled set has no rows")
    count = samples_of(samples, settings, requests[0])
    _check_bounds(bounds, "pairwise" if pairwise else "score", threshold, scale)
    return AgreementExpectation("agrees", requests, None, nodeid_of(item), samples=count,
                                kind="pairwise" if pairwise else "score", cases=ids, human=human,
                                scale=scale, cut=threshold, minima=bounds)


def _rows(data: Any, ref_answer: str | None, **columns: Any) -> list[tuple[str, dict[str, Any]]]:
    """(id, {name: value}) of each labelled row; ``ref_answer`` None when the (default, optional) column is
    absent. Names follow ``cases()``' fixed order: question, answer, ref_answer, then the extras as passed."""
    id_column = columns.pop("id", None)
    extras = [n for n in columns if n not in ("question", "answer")]

    def read(ref: str | None) -> list[tuple[str, dict[str, Any]]]:
        names = [n for n in ("question", "answer") if n in columns] + (["ref_answer"] if ref else []) + extras
        named: dict[str, Any] = {**columns, **({"ref_answer": ref} if ref else {})}
        found = cases(data, id=id_column, **named)
        return [(p.id, {"ref_answer": None, **dict(zip(names, p.values))}) for p in found]

    try:
        return read(ref_answer)
    except Exception as exc:
        if ref_answer != "ref_answer" or "'ref_answer'" not in str(exc):
            raise
    return read(None)


def _human_score(value: Any, case: str, column: str, scale: int) -> float:
    """A human score on the 1..scale scale (half points allowed), or a clear refusal naming the row."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"labelled row {case!r} has no human score ({column})")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"labelled row {case!r}: {column} must be a number, got {value!r}") from None
    if not 1 <= score <= scale:
        raise ValueError(f"labelled row {case!r}: {column} {score:g} is outside the 1..{scale} scale"
                         + (" (a 10-point set? pass max_score=10)" if scale < score <= 10 else ""))
    return score


FIGURES_OF = {"score": ("kappa", "spearman", "exact", "within_one", "tpr", "tnr"),
              "pairwise": ("agreement", "position_consistency")}


def _check_bounds(bounds: dict[str, float], kind: str, threshold: float | None, scale: int) -> None:
    """Refuse, before anything is judged, a bound the labelled set cannot have a figure for, or cannot meet."""
    if threshold is not None and not 1 < threshold <= scale:
        raise ValueError(f"threshold={threshold:g} is not a pass mark on the 1..{scale} scale (above 1, at most "
                         f"{scale}: a score at or above it passes)")
    for keyword, bound in bounds.items():
        name = MINIMA.get(keyword)
        if name is None:
            raise TypeError(f"unknown bound {keyword}=; known: {', '.join(MINIMA)}")
        if name not in FIGURES_OF[kind]:
            raise ValueError(f"{keyword}= does not apply to {kind} labels")
        if name in ("tpr", "tnr") and threshold is None:
            raise ValueError(f"{keyword}= needs threshold= (the pass mark the judge is a classifier at)")
        low = -1.0 if name in ("kappa", "spearman") else 0.0
        if not low <= bound <= 1:
            raise ValueError(f"{keyword}={bound:g} can never be met or never fail: {name} lies in [{low:g}, 1]")


def check(agreement: Agreement, minima: dict[str, float]) -> list[str]:
    """The bounds the figures miss: ``kappa 0.41 is below min_kappa=0.6``."""
    misses = []
    for keyword, bound in minima.items():
        name = MINIMA[keyword]
        figure = agreement.figures.get(name)
        if figure is None:
            raise ValueError(f"{keyword}= does not apply to {agreement.kind} labels"
                             + (" (give threshold= for tpr / tnr)" if name in ("tpr", "tnr") else ""))
        if figure.value is None or not figure.value >= bound:
            shown = "–" if figure.value is None else f"{figure.value:.2f}"
            misses.append(f"{figure.name} {shown} is below {keyword}={bound:g}")
    return misses
