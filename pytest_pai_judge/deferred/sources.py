"""Where held requests' verdicts come from: ONE interface, so settling never branches on the mode.

Deferred mode's source (:mod:`.online`) starts each call as soon as a test holds it; batch mode's
(:mod:`.batch`) sends everything still missing at the end as one batch job. The settler asks a
source for raw outcomes only; storing, parsing and deciding are the same for both.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, MutableMapping
from concurrent.futures import Future

from ..client import JudgeReply
from ..request import JudgeRequest
from ..terminal import Console
from .held import RawOutcome

Wanted = dict[str, tuple[JudgeRequest, str]]
"""cache key -> (request, the node id of the first test that asked)."""


class VerdictSource(abc.ABC):
    """Raw outcomes for held requests, by cache key."""

    batch: bool = False
    """Its missing verdicts are batch errors (``BatchError``) rather than plain judge errors."""
    calls_on_workers: bool = False
    """Under xdist each worker judges its own held requests (and hands the replies over)."""
    early: bool = False
    """Judges a request as soon as it is held (and its reply is stored by key from another thread): the
    run keeps each held request at hand until it is settled. A source judging at the end reads them back
    from the held tests."""

    def submit(self, key: str, request: JudgeRequest) -> None:  # noqa: B027 - a source may judge only at the end
        """A test now holds ``request``: start judging it, if this source judges early."""

    def in_flight(self, key: str) -> Future[JudgeReply] | None:
        """The call judging ``key`` right now, for a synchronous caller to wait on instead of paying twice."""
        return None

    def outcome(self, key: str) -> RawOutcome | None:
        """The finished outcome for ``key`` if this source has one."""
        return None

    def drain(self) -> Iterable[tuple[str, RawOutcome]]:
        """Outcomes finished since the last drain (called on the main thread, which stores them)."""
        return ()

    @abc.abstractmethod
    def resolve(self, wanted: Wanted, console: Console, *, needed: int, on_progress: Callable[[], None],
                store: Callable[[str, JudgeRequest, JudgeReply], None]) -> MutableMapping[str, RawOutcome]:
        """Judge every wanted request; return their outcomes (a missing key: no verdict came).

        ``needed`` counts every request the held tests wait for (for the progress line);
        ``on_progress`` drains finished calls; ``store`` keeps a reply no held test asked for.
        """

    def worker_outcomes(self, keys: Iterable[str], *, wait: bool) -> dict[str, RawOutcome]:
        """An xdist worker's finished outcomes for ``keys`` (waiting for those in flight when ``wait``)."""
        return {}

    @abc.abstractmethod
    def interrupted_text(self) -> str:
        """Why held tests fail when Ctrl-C stops the wait, and what becomes of work still running."""

    def close(self) -> None:  # noqa: B027 - only a source with a background loop has anything to stop
        """Stop background work (idempotent)."""
