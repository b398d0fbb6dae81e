"""The run's report rows, kept in a temporary file as they are made and read back one at a time.

Why: a row carries the question, the answers and the judge's reasons, ~2 KB with its objects;
a 20,000-test run kept 40 MB of rows alive from the moment its tests settled to the end of the
run, only for the summary, the gates and the reports to read them once or twice each. Here a
row costs 8 bytes in memory (where its bytes are in the file). Each read gives new, equal
:class:`~pytest_pai_judge.records.JudgeRecord` objects, so a reader that changes a row changes
its own copy; what the end of the run adds to every row (the test's outcome) is added as they
are read (:class:`WithOutcomes`).

The file is anonymous (``tempfile.TemporaryFile``): nothing is left behind, even under SIGKILL.
A row that cannot be pickled (a value a hook put there) stays in memory as it is.
"""

from __future__ import annotations

import pickle
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, overload

from .records import FIELDS, JudgeRecord

_SHIFT = 24
"""A row's place is ``offset << _SHIFT | length`` in one int (a row is far below 16 MB; longer rows stay in memory)."""
_IN_MEMORY = -1


class Rows(Sequence[JudgeRecord]):
    """Report rows read one at a time: a subclass gives ``__len__`` and ``_row(index)`` (index within range)."""

    def _row(self, index: int) -> JudgeRecord:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> JudgeRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[JudgeRecord]: ...

    def __getitem__(self, index: int | slice) -> JudgeRecord | list[JudgeRecord]:
        if isinstance(index, slice):
            return [self._row(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("report row index out of range")
        return self._row(index)

    def __iter__(self) -> Iterator[JudgeRecord]:
        for index in range(len(self)):
            yield self._row(index)


class RecordStore(Rows):
    """A list of report rows in behaviour (append, extend, len, index, iterate); the rows wait on disk."""

    def __init__(self, records: Iterable[JudgeRecord] = ()) -> None:
        self._places = array("q")
        self._kept: dict[int, JudgeRecord] = {}
        self._file: IO[bytes] | None = None
        self._end = 0
        self.extend(records)

    def append(self, record: JudgeRecord) -> None:
        try:
            data = pickle.dumps(tuple(getattr(record, name) for name in FIELDS), pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - any value pickle refuses: keep the row itself
            data = b""
        if not data or len(data) >= 1 << _SHIFT:
            self._kept[len(self._places)] = record
            self._places.append(_IN_MEMORY)
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="pai-judge-rows-")  # noqa: SIM115 - closed by close()
        self._file.seek(self._end)
        self._file.write(data)
        self._places.append(self._end << _SHIFT | len(data))
        self._end += len(data)

    def extend(self, records: Iterable[JudgeRecord]) -> None:
        for record in records:
            self.append(record)

    def __len__(self) -> int:
        return len(self._places)

    def _row(self, index: int) -> JudgeRecord:
        place = self._places[index]
        if place == _IN_MEMORY:
            return self._kept[index]
        assert self._file is not None
        self._file.seek(place >> _SHIFT)
        return JudgeRecord(*pickle.loads(self._file.read(place & ((1 << _SHIFT) - 1))))

    def close(self) -> None:
        """Drop every row (the file goes with them)."""
        self._places = array("q")
        self._kept.clear()
        if self._file is not None:
            self._file.close()
            self._file = None
            self._end = 0


class WithOutcomes(Rows):
    """Rows as they are read, each with its test's outcome (when one is known) set on it."""

    def __init__(self, records: Sequence[JudgeRecord], outcomes: Mapping[str, str]) -> None:
        self.records, self.outcomes = records, outcomes

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[JudgeRecord]:  # one pass over the rows, not a read per index
        return map(self._filled, self.records)

    def _row(self, index: int) -> JudgeRecord:
        return self._filled(self.records[index])

    def _filled(self, record: JudgeRecord) -> JudgeRecord:
        record.outcome = self.outcomes.get(record.nodeid, record.outcome)
        return record
