"""SQLite persistence of files and batches, with file bytes under ``data_dir/files/``.

Why SQLite: a batch must survive the server being killed mid-way, so every accepted upload and
every judged batch line is committed before it is acknowledged or counted. One connection in
WAL mode is shared by the event loop thread (guarded by a lock for the rare other caller); each
call is one short transaction, so nothing here needs to be awaited. WAL with
``synchronous=NORMAL`` survives a killed process (the threat the tests exercise), not a power cut.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .bodies import json_text

DB_NAME = "pai-judge.sqlite3"
FILES_DIR = "files"
TMP_PREFIX = ".tmp-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    filename   TEXT    NOT NULL,
    purpose    TEXT    NOT NULL,
    bytes      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batches (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT    NOT NULL UNIQUE,
    input_file_id     TEXT    NOT NULL,
    endpoint          TEXT    NOT NULL,
    completion_window TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    deadline          REAL    NOT NULL,
    in_progress_at    INTEGER,
    finalizing_at     INTEGER,
    completed_at      INTEGER,
    failed_at         INTEGER,
    expired_at        INTEGER,
    cancelling_at     INTEGER,
    cancelled_at      INTEGER,
    output_file_id    TEXT,
    error_file_id     TEXT,
    errors            TEXT,
    metadata          TEXT,
    total             INTEGER NOT NULL DEFAULT 0,
    completed         INTEGER NOT NULL DEFAULT 0,
    failed            INTEGER NOT NULL DEFAULT 0,
    input_tokens      INTEGER NOT NULL DEFAULT 0,
    output_tokens     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batch_items (
    batch_id  TEXT    NOT NULL,
    idx       INTEGER NOT NULL,
    custom_id TEXT    NOT NULL,
    body      TEXT    NOT NULL,
    ok        INTEGER,
    record    TEXT,
    PRIMARY KEY (batch_id, idx)
) WITHOUT ROWID;
"""


@dataclass
class FileRow:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int


@dataclass
class BatchRow:
    """A batch as stored; ``status`` is always OpenAI's word (the API layer translates)."""

    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    status: str
    created_at: int
    deadline: float
    """When the batch expires (epoch seconds, fractional so tests can use tiny windows)."""
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


_BATCH_COLUMNS = tuple(f.name for f in fields(BatchRow))
_JSON_COLUMNS = ("errors", "metadata")


@dataclass
class PendingItem:
    idx: int
    custom_id: str
    body: dict[str, Any]


@dataclass
class NewFile:
    """A file to register with :meth:`Store.finish_batch`: its row and the temp file holding its bytes."""

    row: FileRow
    tmp_path: Path


class Store:
    """Files and batches of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.files_dir = self.data_dir / FILES_DIR
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        self.files_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.files_dir.glob(TMP_PREFIX + "*"):
            leftover.unlink(missing_ok=True)  # an upload or output cut short by a kill
        conn = sqlite3.connect(self.data_dir / DB_NAME, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        self._conn = conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _tx(self) -> _Transaction:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return _Transaction(self._conn, self._lock)

    # ------------------------------------------------------------------ files

    def tmp_path(self) -> Path:
        """A fresh temp path inside the files directory (same filesystem, so the final rename is atomic)."""
        return self.files_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"

    def file_path(self, file_id: str) -> Path:
        return self.files_dir / f"{file_id}.jsonl"

    def add_file(self, row: FileRow, tmp_path: Path) -> None:
        """Move the written bytes into place, then commit the row: a crash leaves at most an orphan file."""
        os.replace(tmp_path, self.file_path(row.id))
        with self._tx() as conn:
            self._insert_file(conn, row)

    @staticmethod
    def _insert_file(conn: sqlite3.Connection, row: FileRow) -> None:
        conn.execute("INSERT OR REPLACE INTO files (id, filename, purpose, bytes, created_at, deleted) "
                     "VALUES (?, ?, ?, ?, ?, 0)", (row.id, row.filename, row.purpose, row.bytes, row.created_at))

    def get_file(self, file_id: str) -> FileRow | None:
        with self._tx() as conn:
            r = conn.execute("SELECT id, filename, purpose, bytes, created_at FROM files WHERE id = ? AND deleted = 0",
                             (file_id,)).fetchone()
        return FileRow(**dict(r)) if r else None

    def list_files(self, *, after: str | None, limit: int, ascending: bool = False,
                   purpose: str | None = None) -> tuple[list[FileRow], bool] | None:
        """A page of files, newest first unless ``ascending``; None when ``after`` is unknown."""
        rows = self._page("files", "id, filename, purpose, bytes, created_at", after, limit, ascending,
                          "deleted = 0" + (" AND purpose = ?" if purpose else ""), (purpose,) if purpose else ())
        if rows is None:
            return None
        return [FileRow(**dict(r)) for r in rows[:limit]], len(rows) > limit

    def delete_file(self, file_id: str) -> bool:
        """Mark the row deleted (kept so a list cursor ``after=<it>`` still works) and remove the bytes."""
        with self._tx() as conn:
            changed = conn.execute("UPDATE files SET deleted = 1 WHERE id = ? AND deleted = 0", (file_id,)).rowcount
        if changed:
            self.file_path(file_id).unlink(missing_ok=True)
        return bool(changed)

    def _page(self, table: str, columns: str, after: str | None, limit: int, ascending: bool,
              where: str, params: tuple[Any, ...]) -> list[sqlite3.Row] | None:
        with self._tx() as conn:
            if after is not None:
                anchor = conn.execute(f"SELECT seq FROM {table} WHERE id = ?", (after,)).fetchone()
                if anchor is None:
                    return None
                where += f" AND seq {'>' if ascending else '<'} ?"
                params = (*params, anchor["seq"])
            order = "ASC" if ascending else "DESC"
            return conn.execute(f"SELECT {columns} FROM {table} WHERE {where} ORDER BY seq {order} LIMIT ?",
                                (*params, limit + 1)).fetchall()

    # ------------------------------------------------------------------ batches

    def add_batch(self, row: BatchRow) -> None:
        values = self._batch_values(row)
        with self._tx() as conn:
            conn.execute(f"INSERT INTO batches ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                         tuple(values.values()))

    def get_batch(self, batch_id: str) -> BatchRow | None:
        with self._tx() as conn:
            r = conn.execute(f"SELECT {', '.join(_BATCH_COLUMNS)} FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return self._batch_row(r) if r else None

    def list_batches(self, *, after: str | None, limit: int) -> tuple[list[BatchRow], bool] | None:
        rows = self._page("batches", ", ".join(_BATCH_COLUMNS), after, limit, False, "1 = 1", ())
        if rows is None:
            return None
        return [self._batch_row(r) for r in rows[:limit]], len(rows) > limit

    def unfinished_batch_ids(self) -> list[str]:
        with self._tx() as conn:
            rows = conn.execute("SELECT id FROM batches WHERE status IN "
                                "('validating', 'in_progress', 'finalizing', 'cancelling') ORDER BY seq").fetchall()
        return [r["id"] for r in rows]

    def update_batch(self, batch_id: str, **changes: Any) -> None:
        with self._tx() as conn:
            self._update_batch(conn, batch_id, changes)

    def _update_batch(self, conn: sqlite3.Connection, batch_id: str, changes: dict[str, Any]) -> None:
        values = self._batch_values(changes)
        conn.execute(f"UPDATE batches SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                     (*values.values(), batch_id))

    def start_batch(self, batch_id: str, items: list[tuple[str, dict[str, Any]]],
                    failed_records: dict[int, dict[str, Any]] | None = None, **changes: Any) -> None:
        """Store the validated requests and move the batch on, in one transaction (resume needs both or neither).

        ``failed_records``: the error records of lines that fail without being judged, by index; they are
        stored as those lines' results at once and counted as failed.
        """
        failed = failed_records or {}
        with self._tx() as conn:
            conn.execute("DELETE FROM batch_items WHERE batch_id = ?", (batch_id,))
            conn.executemany("INSERT INTO batch_items (batch_id, idx, custom_id, body, ok, record) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             ((batch_id, i, cid, json_text(body), 0 if i in failed else None,
                               json_text(failed[i]) if i in failed else None)
                              for i, (cid, body) in enumerate(items)))
            self._update_batch(conn, batch_id, {**changes, "failed": len(failed)} if failed else changes)

    def pending_items(self, batch_id: str) -> list[PendingItem]:
        with self._tx() as conn:
            rows = conn.execute("SELECT idx, custom_id, body FROM batch_items WHERE batch_id = ? AND ok IS NULL "
                                "ORDER BY idx", (batch_id,)).fetchall()
        return [PendingItem(r["idx"], r["custom_id"], json.loads(r["body"])) for r in rows]

    def record_result(self, batch_id: str, idx: int, ok: bool, record: dict[str, Any],
                      input_tokens: int = 0, output_tokens: int = 0) -> None:
        """Persist one judged line and its counters together, so a restart neither loses nor repeats it."""
        with self._tx() as conn:
            changed = conn.execute("UPDATE batch_items SET ok = ?, record = ? WHERE batch_id = ? AND idx = ? "
                                   "AND ok IS NULL", (int(ok), json_text(record), batch_id, idx)
                                   ).rowcount
            if changed:
                column = "completed" if ok else "failed"
                conn.execute(f"UPDATE batches SET {column} = {column} + 1, input_tokens = input_tokens + ?, "
                             "output_tokens = output_tokens + ? WHERE id = ?", (input_tokens, output_tokens, batch_id))

    def results(self, batch_id: str) -> Iterator[tuple[bool, str]]:
        """Judged lines in input order, as ``(ok, JSON text)``."""
        with self._tx() as conn:
            rows = conn.execute("SELECT ok, record FROM batch_items WHERE batch_id = ? AND ok IS NOT NULL "
                                "ORDER BY idx", (batch_id,)).fetchall()
        for r in rows:
            yield bool(r["ok"]), r["record"]

    def finish_batch(self, batch_id: str, new_files: list[NewFile], **changes: Any) -> None:
        """Register the output / error files and the final state, and drop the per-line rows, atomically."""
        for f in new_files:
            os.replace(f.tmp_path, self.file_path(f.row.id))
        with self._tx() as conn:
            for f in new_files:
                self._insert_file(conn, f.row)
            self._update_batch(conn, batch_id, changes)
            conn.execute("DELETE FROM batch_items WHERE batch_id = ?", (batch_id,))

    @staticmethod
    def _batch_values(row: BatchRow | dict[str, Any]) -> dict[str, Any]:
        values = {f: getattr(row, f) for f in _BATCH_COLUMNS} if isinstance(row, BatchRow) else dict(row)
        unknown = set(values) - set(_BATCH_COLUMNS)
        if unknown:
            raise KeyError(f"unknown batch columns: {sorted(unknown)}")
        for name in _JSON_COLUMNS:
            if name in values and values[name] is not None:
                values[name] = json_text(values[name])
        return values

    @staticmethod
    def _batch_row(r: sqlite3.Row) -> BatchRow:
        values = dict(r)
        for name in _JSON_COLUMNS:
            if values[name] is not None:
                values[name] = json.loads(values[name])
        return BatchRow(**values)


class _Transaction:
    """``with store._tx() as conn``: the lock plus BEGIN IMMEDIATE / COMMIT (ROLLBACK on error)."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self._conn = conn
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()
