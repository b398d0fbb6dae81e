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
from pathlib import Path
from typing import Any

from ..request import JudgeRequest

LEDGER_NAME = "batches.json"
MARKER = "created_by"
"""``metadata[MARKER] == CREATOR`` and ``metadata["cache"] == cache_token(...)`` mark a job as this cache's."""
CREATOR = "pytest-pai-judge"
COLLECTED_KEPT_S = 2 * 24 * 3600
"""Collected jobs are remembered this long: longer than the completion window the server lists."""


def cache_token(cache_dir: Path, identity: str) -> str:
    """Names one verdict cache and judge service in a job's metadata, without saying where the cache is."""
    return hashlib.sha256(f"{Path(cache_dir).resolve()}|{identity}".encode()).hexdigest()[:16]


class BatchLedger:
    """Unfinished batch jobs, remembered in ``<cache dir>/batches.json`` until their results are collected.

    Each entry keeps the requests of its lines, so results that no test of the collecting run
    needs can still be stored in the cache.
    """

    def __init__(self, cache_dir: Path) -> None:
        self.path = Path(cache_dir) / LEDGER_NAME
        self.problem: str | None = None
        """Why the ledger on disk could not be read (it was moved aside), if it could not."""

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"version": 1, "batches": {}}
        except (OSError, ValueError) as exc:
            return self._unreadable(f"{type(exc).__name__}: {exc}")
        try:
            data = json.loads(text)
        except ValueError as exc:
            return self._unreadable(f"not JSON ({exc})")
        if not isinstance(data, dict) or not isinstance(data.get("batches"), dict):
            return self._unreadable("not a ledger")
        return data

    def _unreadable(self, why: str) -> dict[str, Any]:
        aside = self.path.with_name(f"{LEDGER_NAME}.unreadable-{int(time.time())}")
        try:
            os.replace(self.path, aside)
            where = f"moved to {aside.name}"
        except OSError:
            where = "left in place"
        self.problem = f"the batch ledger {self.path} could not be read ({why}; {where})"
        return {"version": 1, "batches": {}}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".batches-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False)
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
        return {bid: e for bid, e in self._read()["batches"].items() if e.get("identity") == identity}

    def remember(self, batch_id: str, identity: str, requests: dict[str, JudgeRequest]) -> None:
        data = self._read()
        data["batches"][batch_id] = {"identity": identity, "created": int(time.time()),
                                     "requests": {k: r.to_dict() for k, r in requests.items()}}
        self._write(data)

    def forget(self, batch_id: str) -> None:
        """A job whose results were collected (or that the server no longer knows): never look for it again."""
        data = self._read()
        if data["batches"].pop(batch_id, None) is not None:
            now = int(time.time())
            collected = {b: t for b, t in (data.get("collected") or {}).items() if now - int(t) < COLLECTED_KEPT_S}
            collected[batch_id] = now
            data["collected"] = collected
            self._write(data)

    def collected(self) -> dict[str, int]:
        """Ids of jobs collected within :data:`COLLECTED_KEPT_S`, so a listing of the server skips them."""
        return dict(self._read().get("collected") or {})


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
