"""Check the judge itself: judge every row of a labelled set and measure agreement with the people.

``judge.agreement(data, ...)`` returns an :class:`Agreement`; ``assert_judge_agrees(data,
min_kappa=...)`` fails the test with a table of the figures and the worst disagreements. Rows are
read with :func:`~pytest_pai_judge.dataset_cases.cases` (a path, a DataFrame or a
``datasets.Dataset``, the same column keywords), judged as values (cached like any verdict), and
measured by :mod:`pytest_pai_judge.agreement`. A row the judge gave no verdict for is a
disagreement, never dropped. In deferred and batch mode the rows are judged synchronously, when the
assertion runs (as ``@pytest.mark.judge(defer=False)`` would).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import errors
from .agreement import Figure, pairwise_agreement, score_agreement
from .dataset_cases import cases
from .request import JudgeRequest
from .verdict import UnreadableVerdict

if TYPE_CHECKING:  # pragma: no cover
    import pytest

    from .session import JudgeSession

SHOWN_DISAGREEMENTS = 5
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
    """Pairwise: the judge gave the same verdict in both orders."""


@dataclass(frozen=True)
class Agreement:
    """The figures of a labelled set (see :mod:`pytest_pai_judge.agreement`) and its rows."""

    kind: str
    figures: dict[str, Figure]
    rows: list[LabelledRow]
    confusion: dict[tuple[int, int], int] = field(default_factory=dict)
    scale: int = 5

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


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def measure(session: JudgeSession, item: pytest.Item | None, data: Any, *, question: str = "question",
            answer: str = "answer", ref_answer: str | None = "ref_answer", human_score: str = "human_score",
            answer1: str | None = None, answer2: str | None = None, human_winner: str = "human_winner",
            id: str | None = None, threshold: float | None = None, model: str | None = None,  # noqa: A002
            confidence: float = 0.95, **fields: Any) -> Agreement:
    """Judge every row of ``data`` and measure agreement; pairwise when ``answer1`` / ``answer2`` are named."""
    __tracebackhide__ = True
    pairwise = answer1 is not None or answer2 is not None
    model = model or session.settings_for(item).model
    if pairwise:
        params = cases(data, question=question, id=id, answer1=answer1 or "answer1", answer2=answer2 or "answer2",
                       human_winner=human_winner)
        rows = [_pairwise_row(session, item, p.id, *p.values, model=model, fields=fields) for p in params]
        figures = pairwise_agreement([r.human for r in rows], [r.judge for r in rows],
                                     [r.consistent for r in rows], confidence)
        return Agreement("pairwise", figures, rows)
    try:
        params = cases(data, question=question, answer=answer, ref_answer=ref_answer, id=id, human_score=human_score)
    except Exception as exc:
        if ref_answer == "ref_answer" and "'ref_answer'" in str(exc):  # the default column is optional
            params = cases(data, question=question, answer=answer, id=id, human_score=human_score)
        else:
            raise
    rows = [_score_row(session, item, p.id, list(p.values), ref=len(p.values) == 4, model=model, fields=fields)
            for p in params]
    scale = int(fields.get("max_score") or 5)
    result = score_agreement([float(r.human) for r in rows], [r.judge for r in rows], scale=scale,
                             threshold=threshold, confidence=confidence)
    return Agreement("score", result.figures, rows, result.confusion, scale)


def _score_row(session: JudgeSession, item: pytest.Item | None, case: str, values: list[Any], *, ref: bool,
               model: str, fields: dict[str, Any]) -> LabelledRow:
    question, answer = values[0], values[1]
    ref_answer, human = (values[2], values[3]) if ref else (None, values[2])
    if human is None:
        raise ValueError(f"labelled row {case!r} has no human score")
    request = JudgeRequest.single(question, answer, model=model, ref_answer=ref_answer, **fields)
    try:
        verdict = session.value_now(request, item)
    except (errors.JudgeError, UnreadableVerdict) as exc:
        return LabelledRow(case, question, float(human), None, error=str(exc).splitlines()[0][:200])
    return LabelledRow(case, question, float(human), verdict.score, verdict.reasons)


def _pairwise_row(session: JudgeSession, item: pytest.Item | None, case: str, question: str, first: str,
                  second: str, human: Any, *, model: str, fields: dict[str, Any]) -> LabelledRow:
    from .expectation import consensus

    try:
        forward = session.value_now(JudgeRequest.pairwise(question, first, second, model=model, **fields), item)
        backward = session.value_now(JudgeRequest.pairwise(question, second, first, model=model, **fields), item)
    except (errors.JudgeError, UnreadableVerdict) as exc:
        return LabelledRow(case, question, str(human), None, error=str(exc).splitlines()[0][:200], consistent=False)
    result = consensus(forward, backward)
    return LabelledRow(case, question, str(human), result.winner, forward.reasons, consistent=result.consistent)


def check(agreement: Agreement, minima: dict[str, float | None]) -> list[str]:
    """The bounds the figures miss: ``kappa 0.41 is below min_kappa=0.6``."""
    misses = []
    for keyword, bound in minima.items():
        if bound is None:
            continue
        name = MINIMA[keyword]
        figure = agreement.figures.get(name)
        if figure is None:
            raise ValueError(f"{keyword}= does not apply to {agreement.kind} labels"
                             + (" (give threshold= for tpr / tnr)" if name in ("tpr", "tnr") else ""))
        if figure.value is None or not figure.value >= bound:
            shown = "–" if figure.value is None else f"{figure.value:.2f}"
            misses.append(f"{figure.name} {shown} is below {keyword}={bound:g}")
    return misses

