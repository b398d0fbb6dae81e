"""What a held test is: its held judge assertions, its unlogged reports, and their JSON forms.

JSON so that a held test can cross from an xdist worker to the controller, or wait in a
worker's spool file in case the worker crashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from .. import errors
from ..client import JudgeReply
from ..expectation import Expectation

RawOutcome = JudgeReply | BaseException
"""What the judge answered for one request (not parsed yet), or why it did not."""
PHASES = ("setup", "call", "teardown")



def outcome_to_dict(outcome: RawOutcome) -> dict[str, Any]:
    """A reply or an error as JSON, so an xdist worker can hand its online verdicts to the controller."""
    if isinstance(outcome, JudgeReply):
        return outcome.to_dict()
    return {"error": errors.error_to_dict(outcome)}


def outcome_from_dict(data: dict[str, Any]) -> RawOutcome:
    if "error" not in data:
        return JudgeReply.from_dict(data)
    return errors.error_from_dict(data["error"])


@dataclass(slots=True)
class Pending:
    """One held judge assertion: the expectation, the cache key of each request, and where it was made."""

    expectation: Expectation
    keys: list[str]
    callsite: list[list[Any]] = field(default_factory=list)
    """``[filename, lineno, co_firstlineno, function, args, (locals)]`` from the test function inwards."""
    when: str = "call"
    """The phase that made the assertion (a fixture's is setup or teardown): a failure is reported there."""
    shared: bool = False
    """Made by a module / class / session fixture created for an earlier test: this test reuses the
    fixture's value, so if the assertion fails its setup errors too (as pytest re-raises a cached fixture
    error), but the assertion is reported (and counted) only once, with the test that made it."""
    calls: list[list[Any]] = field(default_factory=list)
    """Several samples: ``[request number, [samples it draws], [samples it keeps]]`` of each call planned for it
    (see ``rounds``; a sample cached before the call is drawn again with its block, but not kept)."""

    @property
    def phase(self) -> str:
        return self.when if self.when in PHASES else "call"

    def requests(self) -> list[tuple[str, Any]]:
        """(cache key, request) of each call the assertion waits for."""
        return list(zip(self.keys, self.expectation.requests))

    def to_dict(self) -> dict[str, Any]:
        return {"expectation": self.expectation.to_dict(), "keys": self.keys, "callsite": self.callsite,
                "when": self.when, "shared": self.shared, "calls": self.calls}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pending:
        return cls(Expectation.from_dict(data["expectation"]), list(data["keys"]), list(data.get("callsite") or []),
                   str(data.get("when") or "call"), bool(data.get("shared", False)),
                   [[int(c[0]), [int(j) for j in c[1]], [int(j) for j in c[-1]]] for c in data.get("calls") or []])


@dataclass(slots=True)
class Running:
    """What the holding hooks know of a test while it runs: kept off its stash, which never shrinks (20,000
    tests each kept a bigger stash table for the rest of the run)."""

    phase: str = "call"
    """The phase it is in (setup, call, teardown), as the holding hooks see it."""
    ours: bool = False
    """It runs in the holding protocol (not another plugin's, e.g. rerunfailures)."""
    pending: list[Pending] = field(default_factory=list)
    """Its own held assertions."""
    scoped: list[tuple[Pending, Any]] = field(default_factory=list)
    """Held assertions made while a module / class / session fixture was being created, with that FixtureDef."""
    inherited: list[Pending] = field(default_factory=list)
    """Held assertions of wider-scoped fixture values it reused."""
    inherited_from: list[Pending] = field(default_factory=list)
    """The originals of ``inherited``."""


@dataclass(slots=True)
class Held:
    """A test that ran to its end and waits for verdicts before its reports are logged."""

    nodeid: str
    location: tuple[str, int | None, str]
    reports: list[pytest.TestReport]
    pending: Sequence[Pending]
    """A list, or (once the test is kept) read back from the run's spool on each use (:mod:`.held_spool`)."""
    item: pytest.Item | None = None
    """The item in a single process (for ``repr_failure`` and conftest-scoped hooks); None on the xdist controller."""

    def to_dict(self, config: pytest.Config) -> dict[str, Any]:
        hook = config.hook
        return {"nodeid": self.nodeid, "location": list(self.location),
                "reports": [hook.pytest_report_to_serializable(config=config, report=r) for r in self.reports],
                "pending": [p.to_dict() for p in self.pending]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: pytest.Config) -> Held:
        hook = config.hook
        reports = [hook.pytest_report_from_serializable(config=config, data=d) for d in data["reports"]]
        file, line, name = data["location"]
        return cls(data["nodeid"], (file, line, name), reports, [Pending.from_dict(p) for p in data["pending"]], None)


class NodeProperties:
    """Receives ``user_properties`` from the session's report rows when no item is at hand (xdist controller)."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.user_properties: list[tuple[str, object]] = []
