"""Both sides of pytest-xdist: workers hold and ship their held tests, the controller settles them all.

A worker writes each held test to a spool file the moment it is held, so a crashed worker loses
none; at the end it ships its held tests (and, in deferred mode, the replies it already got) in
``workeroutput``. The controller takes them over when the worker goes down, from its output or,
for a worker that never reported back, from its spool, and settles them with its own (in batch
mode: one job for the whole run).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

import pytest

from ..terminal import plural
from .held import Held, outcome_from_dict, outcome_to_dict
from .run import DeferredRun

WORKER_OUTPUT_KEY = "pai_judge_held"
WORKER_REPLIES_KEY = "pai_judge_replies"
RUN_ID_KEY = "pai_judge_run_id"
STALE_SPOOL_S = 3600.0
"""A spool of another run untouched this long belongs to a run that was killed (a live run writes as it holds)."""


def spool_path(cache_dir: Path, run_id: str, worker_id: str) -> Path:
    return cache_dir / "spool" / f"{run_id}-{worker_id}.jsonl"


def read_spool(path: Path | None) -> list[dict[str, Any]]:
    if path is None or not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line cut short by the crash
            continue
    return rows


class WorkerSpool:
    """An xdist worker's side: spool each held test, ship them all at the end."""

    def __init__(self, config: pytest.Config, cache_dir: Path, run_id: str, warnings: list[str]) -> None:
        self.config = config
        workerinput = getattr(config, "workerinput", {}) or {}
        self.path = spool_path(cache_dir, run_id, str(workerinput.get("workerid", "gw")))
        self.warnings = warnings
        self._file: IO[str] | None = None

    def write(self, held: Held) -> None:
        """Keep a held test on disk as it is held, so a crashed worker loses none of them."""
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open for the worker's life
            self._file.write(json.dumps(held.to_dict(self.config), default=str) + "\n")
            self._file.flush()
        except OSError as exc:
            self.warnings.append(f"cannot spool held tests ({exc}); a crashed xdist worker would lose them")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def ship(self, run: DeferredRun, interrupted: bool) -> None:
        """Hand held tests (and the replies the worker already got) to the controller."""
        held, run.held = run.held, []
        keys = [k for test in held for p in test.pending for k in run.rounds.wait_keys(p)]
        replies = run.source.worker_outcomes(keys, wait=not interrupted) if held else {}
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKER_OUTPUT_KEY] = [h.to_dict(self.config) for h in held]
            workeroutput[WORKER_REPLIES_KEY] = {k: outcome_to_dict(o) for k, o in replies.items()}


class ControllerSide:
    """The controller's side: take over each worker's held tests when it goes down."""

    def __init__(self, run: DeferredRun, cache_dir: Path, run_id: str) -> None:
        self.run = run
        self.config = run.config
        self.cache_dir = cache_dir
        self.run_id = run_id

    def collect_worker(self, node: Any, error: object) -> None:
        """Take over a finished (or crashed) worker's held tests."""
        worker_id = str(getattr(getattr(node, "gateway", None), "id", "") or
                        (getattr(node, "workerinput", None) or {}).get("workerid", ""))
        output = getattr(node, "workeroutput", None) or {}
        spool = spool_path(self.cache_dir, self.run_id, worker_id) if worker_id else None
        if WORKER_OUTPUT_KEY in output:
            rows = output[WORKER_OUTPUT_KEY]
            replies = output.get(WORKER_REPLIES_KEY) or {}
        else:
            rows, replies = read_spool(spool), {}
            if rows:
                self.run.session.warnings.append(f"xdist worker {worker_id} went down ({error}); its "
                                                 f"{plural(len(rows), 'held test')} are judged by the controller")
        for key, data in replies.items():
            self.run.results.setdefault(key, outcome_from_dict(data))
        for row in rows:
            self.run.adopt(Held.from_dict(row, self.config))
        _unlink(spool)

    def adopt_leftover_spools(self) -> None:
        """Held tests of workers that never reported back (Ctrl-C, a lost node) are still ours; spools that
        other, killed runs left behind are removed once nobody has written them for :data:`STALE_SPOOL_S`."""
        now = time.time()
        for spool in (self.cache_dir / "spool").glob("*.jsonl"):
            try:
                if not spool.name.startswith(f"{self.run_id}-") and now - spool.stat().st_mtime > STALE_SPOOL_S:
                    spool.unlink()
            except OSError:
                pass
        known = {test.nodeid for test in self.run.held}
        for spool in sorted((self.cache_dir / "spool").glob(f"{self.run_id}-*.jsonl")):
            for row in read_spool(spool):
                if row.get("nodeid") not in known:
                    known.add(str(row.get("nodeid")))
                    self.run.adopt(Held.from_dict(row, self.config))
            _unlink(spool)


def _unlink(path: Path | None) -> None:
    if path is not None:
        try:
            path.unlink()
        except OSError:
            pass


class XdistHooks:
    """xdist-only hooks (registered only when pytest-xdist is installed, as pytest documents)."""

    def __init__(self, controller: ControllerSide) -> None:
        self.controller = controller

    def pytest_configure_node(self, node: Any) -> None:
        """Give every worker the run id, so the controller can find a crashed worker's spool."""
        node.workerinput[RUN_ID_KEY] = self.controller.run_id

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """A worker finished or crashed: take over its held tests (from its output, or its spool)."""
        self.controller.collect_worker(node, error)
