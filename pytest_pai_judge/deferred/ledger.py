"""The batch ledger: unfinished batch jobs remembered in ``<cache dir>/batches.json``, across runs.

An id is written the moment its job is created, so an interrupted run's next run (or
``--judge-batch-resume ID``) collects the results instead of paying for them again. Writes are
durable and atomic (a temp file, fsync, ``os.replace``, fsync of the directory): a kill at any
moment leaves the old ledger or the new one. A ledger that cannot be read is moved aside (and
said so); the jobs it knew are then found on the server by the ``metadata`` every job of ours
carries (see :data:`MARKER`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..request import JudgeRequest

LEDGER_NAME = "batches.json"
MARKER = "created_by"
"""``metadata[MARKER] == CREATOR`` and ``metadata["cache"] == cache_token(...)`` mark a job as this cache's."""
CREATOR = "pytest-pai-judge"
COLLECTED_KEPT_S = 2 * 24 * 3600
"""Collected jobs are remembered this long: longer than the completion window the server lists."""
HEAD = '{{"version": 1, "collected": {collected}, "batches": {{\n'
"""The ledger's first line; then one line per job (``"<id>": {...}``, a comma before all but the first), then
:data:`TAIL`. The whole file is one JSON object, so any JSON reader reads it."""
HEAD_START, HEAD_END = b'{"version": 1, "collected": ', b', "batches": {\n'
TAIL = b"}}\n"
CHUNK = 1 << 16


def cache_token(cache_dir: Path, identity: str) -> str:
    """Names one verdict cache and judge service in a job's metadata, without saying where the cache is."""
    return hashlib.sha256(f"{Path(cache_dir).resolve()}|{identity}".encode()).hexdigest()[:16]


class BatchLedger:
    """Unfinished batch jobs, remembered in ``<cache dir>/batches.json`` until their results are collected.

    Each entry keeps the requests of its lines, so results that no test of the collecting run
    needs can still be stored in the cache. The file is one JSON object laid out one job per line
    (:data:`HEAD`): remembering or forgetting a job copies the other jobs' lines without parsing
    them, and a job of 20,000 requests is written one request at a time, never as one JSON text.
    """

    def __init__(self, cache_dir: Path) -> None:
        self.path = Path(cache_dir) / LEDGER_NAME
        self.problem: str | None = None
        """Why the ledger on disk could not be read (it was moved aside), if it could not."""

    def _read(self, *, parse: bool = True) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
        """The collected ids and the jobs, as (id, entry) or, unless ``parse``, (id, where its entry is)."""
        try:
            with open(self.path, "rb") as f:
                return _read_jobs(f, self.path, parse=parse)
        except FileNotFoundError:
            return {}, []
        except NotALedger:
            return self._unreadable("not a ledger")
        except (ValueError, UnicodeDecodeError) as exc:
            return self._unreadable(f"not JSON ({exc})")
        except OSError as exc:
            return self._unreadable(f"{type(exc).__name__}: {exc}")

    def _unreadable(self, why: str) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
        aside = self.path.with_name(f"{LEDGER_NAME}.unreadable-{int(time.time())}")
        try:
            os.replace(self.path, aside)
            where = f"moved to {aside.name}"
        except OSError:
            where = "left in place"
        self.problem = f"the batch ledger {self.path} could not be read ({why}; {where})"
        return {}, []

    def _write(self, collected: dict[str, Any], jobs: list[tuple[str, Any]]) -> None:
        """Replace the ledger durably and atomically: a temp file, fsync, ``os.replace``, fsync of the directory.

        ``jobs``: (id, an entry dict, a :class:`Stored` entry of the current file, or a function writing one).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".batches-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(HEAD.format(collected=json.dumps(collected)).encode("utf-8"))
                for i, (batch_id, entry) in enumerate(jobs):
                    f.write((("," if i else "") + json.dumps(batch_id, ensure_ascii=False) + ": ").encode("utf-8"))
                    if isinstance(entry, Stored):
                        entry.copy_to(f)
                    elif callable(entry):
                        entry(f)
                    else:
                        f.write(json.dumps(entry, ensure_ascii=False).encode("utf-8"))
                    f.write(b"\n")
                f.write(TAIL)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def entries(self, identity: str) -> dict[str, dict[str, Any]]:
        return {bid: e for bid, e in self._read()[1] if isinstance(e, dict) and e.get("identity") == identity}

    def remember(self, batch_id: str, identity: str, requests: Mapping[str, JudgeRequest]) -> None:
        collected, jobs = self._read(parse=False)

        def write(f: BinaryIO) -> None:  # one request at a time
            f.write((f'{{"identity": {json.dumps(identity, ensure_ascii=False)}, "created": {int(time.time())}, '
                     '"requests": {').encode())
            for i, (key, request) in enumerate(requests.items()):
                f.write((("," if i else "") + json.dumps(key) + ": "
                         + json.dumps(request.to_dict(), ensure_ascii=False)).encode("utf-8"))
            f.write(b"}}")

        self._write(collected, [*((b, e) for b, e in jobs if b != batch_id), (batch_id, write)])

    def forget(self, batch_id: str) -> None:
        """A job whose results were collected (or that the server no longer knows): never look for it again."""
        collected, jobs = self._read(parse=False)
        if all(b != batch_id for b, _ in jobs):
            return
        now = int(time.time())
        collected = {b: t for b, t in collected.items() if now - int(t) < COLLECTED_KEPT_S}
        collected[batch_id] = now
        self._write(collected, [(b, e) for b, e in jobs if b != batch_id])

    def collected(self) -> dict[str, int]:
        """Ids of jobs collected within :data:`COLLECTED_KEPT_S`, so a listing of the server skips them."""
        return dict(self._read(parse=False)[0])


class NotALedger(ValueError):
    """JSON, but not the ledger's shape."""


@dataclass(frozen=True)
class Stored:
    """A job's entry in the current ledger file, by position: copied to the new file without being parsed."""

    path: Path
    start: int
    end: int

    def copy_to(self, out: BinaryIO) -> None:
        with open(self.path, "rb") as f:
            f.seek(self.start)
            left = self.end - self.start
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise ValueError("the ledger changed while it was rewritten")
                out.write(chunk)
                left -= len(chunk)


def _read_jobs(f: BinaryIO, path: Path, *, parse: bool) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """Read a ledger laid out by :meth:`BatchLedger._write`, or any JSON ledger (then parsed whole)."""
    head = f.readline(CHUNK)
    if not (head.startswith(HEAD_START) and head.endswith(HEAD_END)):
        f.seek(0)
        return _parsed_whole(json.loads(f.read().decode("utf-8")))
    collected = json.loads(head[len(HEAD_START):-len(HEAD_END)].decode("utf-8"))
    if not isinstance(collected, dict):
        raise NotALedger("collected is not an object")
    jobs: list[tuple[str, Any]] = []
    decoder = json.JSONDecoder()
    while True:
        start = f.tell()
        line = f.readline(CHUNK)
        if line == TAIL:
            if f.read(1):
                raise ValueError("text after the end of the ledger")
            return collected, jobs
        if not line:
            raise ValueError("the ledger is cut short")
        text = line.decode("utf-8", errors="replace")
        skip = 1 if text.startswith(",") else 0
        batch_id, end = decoder.raw_decode(text, skip)
        if not isinstance(batch_id, str) or text[end:end + 2] != ": ":
            raise ValueError("a ledger line does not start with a batch id")
        value_start = start + len(text[:end + 2].encode("utf-8"))
        parts = [line] if parse else []
        while not line.endswith(b"\n"):
            line = f.readline(CHUNK)
            if not line:
                raise ValueError("the ledger is cut short")
            if parse:
                parts.append(line)
        if parse:
            whole = b"".join(parts).decode("utf-8")
            entry = json.loads(whole[len(text[:end + 2]):])
            jobs.append((batch_id, entry))
        else:
            jobs.append((batch_id, Stored(path, value_start, f.tell() - 1)))


def _parsed_whole(data: Any) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    if not isinstance(data, dict) or not isinstance(data.get("batches"), dict):
        raise NotALedger("not a ledger")
    collected = data.get("collected") or {}
    return (collected if isinstance(collected, dict) else {}), list(data["batches"].items())


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
