"""One row per judged assertion: what reports, drift checks and the terminal summary read.

Kept free of pandas so that a run that never writes a report never imports it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(slots=True)
class JudgeRecord:
    nodeid: str
    run_mode: str
    """immediate, deferred or batch."""
    kind: str
    """single, pairwise or custom."""
    assertion: str
    """score, prefers, not_worse, value (a ``judge`` fixture call whose verdict the test read), or a judge
    check's row: agrees (one labelled row), unbiased (one probe's request)."""
    model: str
    scene: str | None = None
    question: str | None = None
    answer: str | None = None
    """Pairwise: the first answer (the candidate)."""
    answer2: str | None = None
    """Pairwise: the second answer (what the candidate is compared with)."""
    score: float | None = None
    """Pairwise: the first answer's score, averaged over both orders when both were judged."""
    score2: float | None = None
    """Pairwise: the second answer's score, likewise."""
    max_score: int | None = None
    threshold: float | None = None
    passed: bool | None = None
    """None when no threshold applied (a verdict read as a value) or when the verdict was unavailable."""
    winner: str | None = None
    """Pairwise: "1", "2" or "tie" (after both orders were judged, for prefers / not_worse)."""
    criteria: dict[str, float | None] = field(default_factory=dict)
    reasons: str = ""
    tokens: int = 0
    """Tokens spent this run: those of the fresh calls behind this row (0 for a row from cached verdicts)."""
    cached: bool = False
    """Every verdict of this row came from the cache."""
    latency_s: float | None = None
    error: str | None = None
    """Why no verdict could be had (unreadable reply, judge error); such a record never passes."""
    samples: int = 1
    """How many samples of the judge were drawn (1 unless ``samples=`` asked for more)."""
    scores: list[float] = field(default_factory=list)
    """Every readable sample's score (pairwise: the first answer's, over both orders)."""
    spread: float | None = None
    """The sample scores' standard deviation (0 for one sample; None without a verdict)."""
    decision: str | None = None
    """met, not met or inconclusive (None: a verdict read as a value, or no verdict)."""
    xfail: bool = False
    """The test is marked xfail (an expected failure): reports show a verdict that did not pass as
    ``xfailed`` (one that passed as ``xpassed``) and leave both out of the passed / failed counts."""
    outcome: str | None = None
    """The test's outcome as pytest reported it (passed, failed, error, skipped, xfailed, xpassed; see
    :mod:`~pytest_pai_judge.counts`); None until the test is reported, or outside a test."""
    verdicts: int = 0
    """Verdicts behind this row that the judge answered (every sample, both orders; unreadable replies too)."""
    cached_verdicts: int = 0
    """Of those, read from the cache (the rest came from fresh calls this run)."""
    calls: int = 0
    """Fresh judge calls behind this row, made this run (samples drawn in one block are one call)."""
    cached_tokens: int = 0
    """Tokens recorded with the cached verdicts (spent by the run that judged them; ``tokens`` is this run's)."""
    ref_answer: str | None = None
    scene_desc: str | None = None
    metric: str | None = None
    score_desc: str | None = None
    steps: str | None = None
    template: str | None = None
    """A custom template's messages, as JSON text."""
    params: str | None = None
    """The generation parameters sent (temperature, seed, ...), as JSON text; None when none were given."""
    confidence: float | None = None
    """The confidence a several-sample decision was made at (None for one sample)."""
    group: str | None = None
    """The closest ``@pytest.mark.judge(group=...)`` of the test (what ``--judge-gate ... for group=`` covers)."""
    criteria2: dict[str, float | None] | None = None
    """Pairwise: the second answer's per-criterion scores (``criteria`` holds the first's); None otherwise."""
    case: str | None = None
    """A judge check's row: the labelled row's id (``assert_judge_agrees``) or the probe (``assert_judge_unbiased``)."""
    human: str | None = None
    """A labelled row's human label: the score, or the winner ("1", "2", "tie")."""
    prompt_tokens: int = 0
    """Of ``tokens``, the prompts' (the rest is completion), for a price per input / output token."""
    contradiction: str | None = None
    """Pairwise: where a judge's winner words disagreed with its own per-answer scores (the words were taken)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def row(self) -> RecordRow:
        """The record as a read-only mapping, without the copy :meth:`to_dict` makes (20,000 rows are read
        for the terminal summary; copies of them all would be held at once)."""
        return RecordRow(self)


FIELDS = tuple(f.name for f in fields(JudgeRecord))
_FIELD_SET = frozenset(FIELDS)


class RecordRow(Mapping[str, Any]):
    """A :class:`JudgeRecord` read as its ``to_dict()`` row (the same keys and values, nothing copied)."""

    __slots__ = ("record",)

    def __init__(self, record: JudgeRecord) -> None:
        self.record = record

    def __getitem__(self, name: str) -> Any:
        if name not in _FIELD_SET:
            raise KeyError(name)
        return getattr(self.record, name)

    def __iter__(self) -> Iterator[str]:
        return iter(FIELDS)

    def __len__(self) -> int:
        return len(FIELDS)
