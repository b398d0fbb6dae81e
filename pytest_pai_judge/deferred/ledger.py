"""The batch ledger: unfinished batch jobs remembered in ``<cache dir>/batches.json``, across runs.

An id is written the moment its job is created, so an interrupted run's next run (or
``--judge-batch-resume ID``) collects the results instead of paying for them again. Writes are
atomic (a temp file, then ``os.replace``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ..request import JudgeRequest

LEDGER_NAME = "batches.json"


class BatchLedger:
    """Unfinished batch jobs, remembered in ``<cache dir>/batches.json`` until their results are collected.

    Each entry keeps the requests of its lines, so results that no test of the collecting run
    needs can still be stored in the cache.
    """

    def __init__(self, cache_dir: Path) -> None:
        self.path = Path(cache_dir) / LEDGER_NAME

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"version": 1, "batches": {}}
        if not isinstance(data, dict) or not isinstance(data.get("batches"), dict):
            return {"version": 1, "batches": {}}
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".batches-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False)
            os.replace(tmp, self.path)
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
        data = self._read()
        if data["batches"].pop(batch_id, None) is not None:
            self._write(data)
