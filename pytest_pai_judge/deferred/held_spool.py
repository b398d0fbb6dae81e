"""Held assertions waiting in a temporary file, so a held test costs memory for its reports only.

Why: what a held test waits with (its expectation and requests, the cache keys, the call site)
is ~2 KB of small objects; 20,000 of them were held until the end of the run. Once a test has run
to its end, its held assertions are only read again when the run settles, a few times and one
test at a time, so they wait here as one JSON line each (the form xdist ships them in) and are
read back on each use. A test whose assertions do not come back equal from JSON (a value JSON
cannot carry), or that draws several samples (their rounds are planned on the held objects),
keeps its objects in memory.

The file is anonymous (``tempfile.TemporaryFile``): nothing is left behind, even under SIGKILL
(an xdist worker's own spool, :class:`.xdist.WorkerSpool`, is what survives a crash).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, overload

from .held import Pending

_SHIFT = 32
"""A line's place is ``offset << _SHIFT | length`` in one int."""


class PendingSpool:
    """One run's file of held assertions."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._end = 0

    def keep(self, entries: Sequence[Pending]) -> Sequence[Pending]:
        """``entries`` as a spooled sequence that reads them back on use (or ``entries`` itself, kept in memory)."""
        if not entries or isinstance(entries, Spooled) or any(p.expectation.samples > 1 for p in entries):
            return entries
        try:
            line = json.dumps([p.to_dict() for p in entries], separators=(",", ":")).encode("ascii")
        except (TypeError, ValueError):
            return entries
        if decode(line) != list(entries):  # e.g. a tuple or an int dict key in a hook-amended request
            return entries
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="pai-judge-held-")  # noqa: SIM115 - closed by close()
        self._file.seek(self._end)
        self._file.write(line)
        place = self._end << _SHIFT | len(line)
        self._end += len(line)
        return Spooled(self, place, len(entries))

    def read(self, place: int) -> list[Pending]:
        if self._file is None:
            raise RuntimeError("the held tests' spool was closed before they were settled")
        self._file.seek(place >> _SHIFT)
        return decode(self._file.read(place & ((1 << _SHIFT) - 1)))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def decode(line: bytes) -> list[Pending]:
    """The held assertions of one line; cache keys interned, so every read of a key is one string."""
    entries = [Pending.from_dict(d) for d in json.loads(line.decode("ascii"))]
    for entry in entries:
        entry.keys = [sys.intern(k) for k in entry.keys]
    return entries


class Spooled(Sequence[Pending]):
    """A held test's assertions in the spool: each use reads them back (equal objects, new each time)."""

    __slots__ = ("spool", "place", "size")

    def __init__(self, spool: PendingSpool, place: int, size: int) -> None:
        self.spool, self.place, self.size = spool, place, size

    def __iter__(self) -> Iterator[Pending]:
        return iter(self.spool.read(self.place))

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> Pending: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Pending]: ...

    def __getitem__(self, index: int | slice) -> Pending | Sequence[Pending]:
        return self.spool.read(self.place)[index]
