"""The background side of batches: validate the input, judge the lines, write the result files.

Why a separate module: the HTTP layer only records intent (create, cancel) in the store; this
runner owns every state change after that, one asyncio task per batch, and can pick any batch
up again from the store after a restart. Each judged line is committed the moment it finishes
(``Store.record_result``), with no ``await`` between getting the answer and committing it, so a
kill loses at most the lines that were in flight, and a resume judges only the lines not stored.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .batch_input import BatchLine, parse_batch_input
from .config import ServerConfig
from .errors import error_envelope, model_service_failed
from .store import BatchRow, FileRow, NewFile, PendingItem, Store

log = logging.getLogger("pytest_pai_judge.server.batches")

Complete = Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]

BATCH_OUTPUT_PURPOSE = "batch_output"
"""The ``purpose`` of the output and error files a finished batch gets."""


def output_file_id(batch_id: str) -> str:
    return "file-batch_output-" + batch_id.removeprefix("batch_")


def error_file_id(batch_id: str) -> str:
    return "file-batch_error-" + batch_id.removeprefix("batch_")


class BatchRunner:
    """Runs batches from the store; one task per unfinished batch, lines bounded by a shared semaphore."""

    def __init__(self, config: ServerConfig, store: Store, complete: Complete, stats: collections.Counter[str]) -> None:
        self.config = config
        self.store = store
        self.complete = complete
        self.stats = stats
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_events: dict[str, asyncio.Event] = {}
        self._slots = asyncio.Semaphore(max(1, config.batch_concurrency))

    # ------------------------------------------------------------------ control

    def start(self, batch_id: str) -> None:
        if batch_id in self._tasks:
            return
        self._cancel_events[batch_id] = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self._run(batch_id), name=f"pai-judge {batch_id}")
        self._tasks[batch_id] = task
        task.add_done_callback(lambda _t: self._forget(batch_id))

    def cancel(self, batch_id: str) -> None:
        """The batch was marked cancelling in the store; stop starting lines and wrap it up."""
        event = self._cancel_events.get(batch_id)
        if event is not None:
            event.set()
        else:
            self.start(batch_id)

    def resume_all(self) -> None:
        for batch_id in self.store.unfinished_batch_ids():
            self.start(batch_id)

    async def stop(self) -> None:
        """Cancel every batch task without touching its stored state, so the next start resumes it."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _forget(self, batch_id: str) -> None:
        self._tasks.pop(batch_id, None)
        self._cancel_events.pop(batch_id, None)

    # ------------------------------------------------------------------ one batch

    async def _run(self, batch_id: str) -> None:
        try:
            await self._advance(batch_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a broken disk: fail the batch rather than leave it running
            log.exception("batch %s failed unexpectedly", batch_id)
            try:
                self.store.update_batch(batch_id, status="failed", failed_at=int(time.time()), errors=[
                    {"code": "internal_error", "line": None, "message": f"{type(exc).__name__}: {exc}", "param": None}])
            except Exception:
                log.exception("could not mark batch %s failed", batch_id)

    async def _advance(self, batch_id: str) -> None:
        batch = self.store.get_batch(batch_id)
        if batch is None:
            return
        if batch.status == "validating":
            batch = self._validate(batch)
        if batch.status == "in_progress":
            if time.time() >= batch.deadline:
                await self._wrap_up(batch.id, "expired")
                return
            outcome = await self._judge_pending(batch)
            if outcome == "completed":
                self.store.update_batch(batch.id, status="finalizing", finalizing_at=int(time.time()))
                await self._wrap_up(batch.id, "completed")
            elif outcome == "expired":
                await self._wrap_up(batch.id, "expired")
            else:
                await self._wrap_up(batch.id, "cancelled")
        elif batch.status == "finalizing":
            await self._wrap_up(batch.id, "completed")
        elif batch.status == "cancelling":
            await self._wrap_up(batch.id, "cancelled")

    def _validate(self, batch: BatchRow) -> BatchRow:
        """validating -> in_progress (requests stored) or failed (with OpenAI-style line errors)."""
        now = int(time.time())
        path = self.store.file_path(batch.input_file_id)
        try:
            data = path.read_bytes() if self.store.get_file(batch.input_file_id) else None
        except FileNotFoundError:
            data = None
        if data is None:
            errors = [{"code": "file_not_found", "line": None, "param": "input_file_id",
                       "message": f"The input file {batch.input_file_id} was deleted before the batch started."}]
            lines: list[BatchLine] = []
        else:
            lines, errors = parse_batch_input(data)
        if errors:
            self.store.update_batch(batch.id, status="failed", failed_at=now, errors=errors)
        else:
            # a line whose body cannot be judged at all fails alone, with the error an online call gets
            failed = {i: _line_record(ln.custom_id, ln.error.status, error_envelope(ln.error))[0]
                      for i, ln in enumerate(lines) if ln.error is not None}
            self.store.start_batch(batch.id, [(ln.custom_id, ln.body) for ln in lines], failed_records=failed,
                                   status="in_progress", in_progress_at=now, total=len(lines))
            self.stats["batch_lines_judged"] += len(failed)
            self.stats["batch_lines_failed"] += len(failed)
        updated = self.store.get_batch(batch.id)
        assert updated is not None
        return updated

    async def _judge_pending(self, batch: BatchRow) -> str:
        """Judge the stored lines without a result; 'completed', 'cancelled' or 'expired'."""
        cancel = self._cancel_events.setdefault(batch.id, asyncio.Event())
        queue = iter(self.store.pending_items(batch.id))

        async def worker() -> None:
            for item in queue:  # shared iterator: each line is taken by exactly one worker
                if cancel.is_set():
                    return
                async with self._slots:
                    if cancel.is_set():
                        return
                    await self._judge_line(batch.id, item, cancel)

        workers = [asyncio.ensure_future(worker()) for _ in range(max(1, self.config.batch_concurrency))]
        all_done: asyncio.Future[Any] = asyncio.gather(*workers)
        cancelled: asyncio.Future[Any] = asyncio.ensure_future(cancel.wait())
        try:
            timeout = max(0.0, batch.deadline - time.time())
            done, _ = await asyncio.wait({all_done, cancelled}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            # cancel first: once it is set the workers return, so both may be done by now (a cancelled
            # batch must not end up Succeeded)
            if cancel.is_set():
                return "cancelled"
            if all_done in done:
                all_done.result()  # re-raise a store failure
                return "completed"
            return "expired"
        finally:
            cancelled.cancel()
            for w in workers:
                w.cancel()
            await asyncio.gather(all_done, cancelled, return_exceptions=True)

    async def _judge_line(self, batch_id: str, item: PendingItem, cancel: asyncio.Event) -> None:
        body = dict(item.body)
        body.pop("stream", None)  # a batch line is answered whole
        body.pop("stream_options", None)
        try:
            status, answer = await self.complete(body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("judging line %s of batch %s raised", item.custom_id, batch_id)
            status, answer = 500, error_envelope(model_service_failed("Request_judge_model", str(uuid.uuid4()),
                                                                      f"{type(exc).__name__}: {exc}"))
        # no await from here on: the result is committed or never happened
        if cancel.is_set():  # the cancel was answered with the counts as they were: nothing is judged after it
            return
        ok = status == 200
        record, usage = _line_record(item.custom_id, status, answer)
        self.store.record_result(batch_id, item.idx, ok, record, input_tokens=usage.get("prompt_tokens", 0),
                                 output_tokens=usage.get("completion_tokens", 0))
        self.stats["batch_lines_judged"] += 1
        if not ok:
            self.stats["batch_lines_failed"] += 1

    async def _wrap_up(self, batch_id: str, final: str) -> None:
        """Write the output / error files and reach ``final``; safe to repeat after a crash."""
        now = int(time.time())
        ok_lines: list[str] = []
        error_lines: list[str] = []
        for ok, text in self.store.results(batch_id):
            (ok_lines if ok else error_lines).append(text)
        if final == "expired":
            for item in self.store.pending_items(batch_id):
                error_lines.append(json.dumps(_expired_record(item.custom_id), ensure_ascii=False))
        new_files = []
        for lines, file_id in ((ok_lines, output_file_id(batch_id)), (error_lines, error_file_id(batch_id))):
            if lines:
                tmp = self.store.tmp_path()
                size = await asyncio.to_thread(_write_lines, tmp, lines)
                new_files.append(NewFile(FileRow(file_id, file_id + ".jsonl", BATCH_OUTPUT_PURPOSE,
                                                 size, now), tmp))
        changes: dict[str, Any] = {"status": final, f"{final}_at": now,
                                   "output_file_id": output_file_id(batch_id) if ok_lines else None,
                                   "error_file_id": error_file_id(batch_id) if error_lines else None}
        if final == "expired":
            batch = self.store.get_batch(batch_id)
            if batch is not None:
                changes["failed"] = batch.total - batch.completed
        self.store.finish_batch(batch_id, new_files, **changes)


_ERROR_REQUEST_ID = re.compile(r"request_id: ([\w-]+)")


def _request_id(answer: dict[str, Any]) -> str:
    """The judgement's request id: the completion's id, or the one quoted in a ModelServiceFailed message."""
    rid = answer.get("id")
    if isinstance(rid, str) and rid:
        return rid.removeprefix("chatcmpl-")
    err = answer.get("error")
    match = _ERROR_REQUEST_ID.search(str(err.get("message", ""))) if isinstance(err, dict) else None
    return match.group(1) if match else str(uuid.uuid4())


def _line_record(custom_id: str, status: int, answer: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """An output-file line (the spec's shape) or an error-file line, and the usage to add up."""
    request_id = _request_id(answer)
    if status == 200:  # the spec's output line: the body's id is "chatcmpl-" + the bare request id
        answer = {**answer, "id": "chatcmpl-" + request_id}
    response = {"status_code": status, "request_id": request_id, "body": answer}
    if status == 200:
        usage = answer.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return {"id": request_id, "custom_id": custom_id, "response": response, "error": None}, {
            k: v for k, v in usage.items() if isinstance(v, int)}
    err = answer.get("error")
    err = err if isinstance(err, dict) else {}
    error = {"code": str(err.get("code") or status), "message": str(err.get("message") or f"HTTP {status}")}
    return {"id": request_id, "custom_id": custom_id, "response": response, "error": error}, {}


def _expired_record(custom_id: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "custom_id": custom_id, "response": None,
            "error": {"code": "batch_expired",
                      "message": "This request could not be executed before the completion window expired."}}


def _write_lines(path: Path, lines: list[str]) -> int:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return len(data)
