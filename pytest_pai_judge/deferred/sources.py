"""Where held requests' verdicts come from: ONE interface, so settling never branches on the mode.

Deferred mode's source (:mod:`.online`) starts each call as soon as a test holds it; batch mode's
(:mod:`.batch`) sends everything still missing at the end as one batch job. The settler asks a
source for raw outcomes only; storing, parsing and deciding are the same for both.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from concurrent.futures import Future

from ..client import JudgeReply
from ..request import JudgeRequest
from ..terminal import Console
from .held import Pending, RawOutcome

Wanted = Mapping[str, tuple[JudgeRequest, str]]
"""cache key -> (request, the node id of the first test that asked)."""


class HeldRequests(Mapping[str, tuple[JudgeRequest, str]]):
    """A :data:`Wanted` whose requests are read back from their held tests on each use.

    Why: a batch run wants every held request at once; built as a dict, 20,000 requests read back
    from the held tests' spool (:mod:`.held_spool`) would all be in memory while the job runs. Each
    key costs a reference to its test's held assertions and the node id.
    """

    def __init__(self, refs: dict[str, tuple[Sequence[Pending], str]] | None = None) -> None:
        self.refs: dict[str, tuple[Sequence[Pending], str]] = refs if refs is not None else {}

    def add(self, key: str, pending: Sequence[Pending], nodeid: str) -> None:
        """``key`` is one of the requests of ``pending`` (a held test's assertions), asked first by ``nodeid``."""
        self.refs[key] = (pending, nodeid)

    def __getitem__(self, key: str) -> tuple[JudgeRequest, str]:
        pending, nodeid = self.refs[key]
        for entry in pending:
            for own_key, request in entry.requests():
                if own_key == key:
                    return request, nodeid
        raise KeyError(key)  # pragma: no cover - a key is added with its own test

    def __iter__(self) -> Iterator[str]:
        return iter(self.refs)

    def __len__(self) -> int:
        return len(self.refs)

    def __contains__(self, key: object) -> bool:
        return key in self.refs


def only(wanted: Wanted, keys: Iterable[str]) -> Wanted:
    """The part of ``wanted`` for ``keys``, as lazy as ``wanted`` itself."""
    if isinstance(wanted, HeldRequests):
        return HeldRequests({k: wanted.refs[k] for k in keys})
    return {k: wanted[k] for k in keys}


class RequestsOf(Mapping[str, JudgeRequest]):
    """The requests of a :data:`Wanted` (without the node ids), read on use."""

    def __init__(self, wanted: Wanted) -> None:
        self.wanted = wanted

    def __getitem__(self, key: str) -> JudgeRequest:
        return self.wanted[key][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self.wanted)

    def __len__(self) -> int:
        return len(self.wanted)

    def __contains__(self, key: object) -> bool:
        return key in self.wanted


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
