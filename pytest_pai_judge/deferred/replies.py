"""Raw outcomes by cache key, with the replies' text kept in a temporary file rather than in memory.

Why: a batch job's output file answers every held request at once, and each held test settles
only after all of them are in; 20,000 replies of ~1 KB each (text, usage, the reply object)
would be held together until the last test is logged. Here a reply costs its key's slot and one
integer (where its JSON line is in the file); it is read back when a test needs it. Errors stay
in memory as they are (few, and their identity is kept: several keys may share one error).

The file is anonymous (``tempfile.TemporaryFile``): nothing is left behind, even under SIGKILL.
What must survive a kill is in the verdict cache, written as each reply comes in.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, MutableMapping
from typing import IO, Any

from ..client import JudgeReply
from ..interning import shared
from .held import RawOutcome

_SHIFT = 32
"""A reply's place is ``offset << _SHIFT | length`` in one int (a reply line is far below 4 GB)."""


class Outcomes(MutableMapping[str, RawOutcome]):
    """``dict[str, RawOutcome]`` in behaviour; a :class:`JudgeReply` read back is equal, not identical."""

    def __init__(self) -> None:
        self._places: dict[str, int] = {}
        self._errors: dict[str, BaseException] = {}
        self._file: IO[bytes] | None = None
        self._end = 0

    def __getitem__(self, key: str) -> RawOutcome:
        place = self._places.get(key)
        if place is None:
            return self._errors[key]
        return decode(self._read(place))

    def __setitem__(self, key: str, outcome: RawOutcome) -> None:
        if isinstance(outcome, JudgeReply):
            self._put(key, encode(outcome))
        else:
            self._places.pop(key, None)
            self._errors[key] = outcome

    def __delitem__(self, key: str) -> None:
        if self._places.pop(key, None) is None:
            del self._errors[key]

    def __contains__(self, key: object) -> bool:
        return key in self._places or key in self._errors

    def __iter__(self) -> Iterator[str]:
        yield from list(self._places)
        yield from list(self._errors)

    def __len__(self) -> int:
        return len(self._places) + len(self._errors)

    def holds_reply(self, key: str) -> bool:
        """Whether ``key``'s outcome is a reply (not an error), without reading it back."""
        return key in self._places

    def update(self, other: Any = (), /, **kwargs: RawOutcome) -> None:
        """As ``dict.update``; another :class:`Outcomes`' replies are copied as bytes, not decoded."""
        if isinstance(other, Outcomes):
            for key, line in other.lines():
                self._put(key, line)
            for key, error in other.failures().items():
                self[key] = error
            return
        super().update(other, **kwargs)

    def lines(self) -> Iterator[tuple[str, bytes]]:
        """(key, the reply's JSON line) of every reply, read from the file one at a time."""
        for key, place in list(self._places.items()):
            yield key, self._read(place)

    def failures(self) -> dict[str, BaseException]:
        """The errors, by key."""
        return dict(self._errors)

    def close(self) -> None:
        """Drop everything (the file goes with it)."""
        self._places.clear()
        self._errors.clear()
        if self._file is not None:
            self._file.close()
            self._file = None
            self._end = 0

    # ------------------------------------------------------------------ the file

    def _put(self, key: str, line: bytes) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="pai-judge-replies-")  # noqa: SIM115 - closed by close()
        self._file.seek(self._end)
        self._file.write(line)
        self._places[key] = self._end << _SHIFT | len(line)
        self._errors.pop(key, None)
        self._end += len(line)

    def _read(self, place: int) -> bytes:
        assert self._file is not None
        self._file.seek(place >> _SHIFT)
        return self._file.read(place & ((1 << _SHIFT) - 1))


def encode(reply: JudgeReply) -> bytes:
    return json.dumps(reply.to_dict(), separators=(",", ":")).encode("ascii")  # ASCII: a lone surrogate survives


def decode(line: bytes) -> JudgeReply:
    reply = JudgeReply.from_dict(json.loads(line.decode("utf-8")))
    return JudgeReply(reply.raw, shared(reply.model), reply.usage, reply.latency_s, reply.more,
                      shared(reply.finish_reasons))
