"""One row per judged assertion: what reports, drift checks and the terminal summary read.

Kept free of pandas so that a run that never writes a report never imports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class JudgeRecord:
    nodeid: str
    run_mode: str
    """immediate, deferred or batch."""
    kind: str
    """single, pairwise or custom."""
    assertion: str
    """score, prefers, not_worse, or value (a ``judge`` fixture call whose verdict the test read)."""
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
    cached: bool = False
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
