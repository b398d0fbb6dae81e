"""The verdict cache: the judge's raw replies in SQLite, keyed by the full request.

Why raw replies and not verdicts: a verdict is re-parsed from ``raw`` on every read, so a
parser fix re-reads old replies without paying for new judge calls.

Why SQLite in WAL mode: pytest-xdist workers write at the same time; WAL lets readers run
beside one writer, ``busy_timeout`` queues writers, and every ``put`` is one short
transaction, so a writer killed with SIGKILL loses only the transaction in flight and
never corrupts what was committed (``synchronous=NORMAL`` is crash-safe for process
death; only a power cut can drop the last commits).

Why it never raises: a cache is an optimisation. A directory that cannot be created, a
corrupt or foreign file, a database error mid-run -- all set :attr:`VerdictCache.warning`
(one message naming the path and the reason, for the plugin to print once) and the object
then behaves as mode ``off``. The only exceptions are caller bugs: a request carrying
credentials (``ValueError``) or one that is not JSON-serialisable.

Modes: ``use`` (read + write), ``refresh`` (never read, write), ``off`` (nothing; no file is
created), ``replay`` (read only; ``put``/``touch`` are no-ops, a miss is the caller's
business).

Layout: ``<dir>/verdicts.sqlite3`` (default dir ``<rootdir>/.pai_judge_cache/``, created with
a ``.gitignore`` of ``*``). Tables: ``replies(key, raw, model, usage, request, created_at)``
and ``uses(key, nodeid, run_id, ts)`` -- the last run in which each test used each entry.
The connection opens lazily on first use (pytest start-up stays fast) and once per process
(a forked child never touches its parent's connection).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CacheMode", "CachedReply", "VerdictCache", "cache_key", "canonical_json", "DB_FILENAME",
           "DEFAULT_DIRNAME"]


class CacheMode(str, enum.Enum):
    """What the cache may do in a run; the rules live here once, for the cache and its callers."""

    USE = "use"
    REFRESH = "refresh"
    OFF = "off"
    REPLAY = "replay"

    def __str__(self) -> str:
        return self.value

    @property
    def reads(self) -> bool:
        """Lookups can hit (use, replay)."""
        return self in (CacheMode.USE, CacheMode.REPLAY)

    @property
    def writes(self) -> bool:
        """Replies, uses and parse memos are stored, and pruning can delete (use, refresh)."""
        return self in (CacheMode.USE, CacheMode.REFRESH)


CACHE_MODES: tuple[str, ...] = tuple(m.value for m in CacheMode)
DEFAULT_DIRNAME = ".pai_judge_cache"
DB_FILENAME = "verdicts.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000

# Keys (lower-cased, without "-", "_" and spaces) that smell of credentials.
_SECRET_KEYS = frozenset({
    "authorization", "proxyauthorization", "apikey", "xapikey", "apitoken", "token", "accesstoken", "authtoken",
    "bearer", "bearertoken", "secret", "secretkey", "clientsecret", "password", "passwd", "cookie", "setcookie",
    "judgemodeltoken", "accesskeysecret", "accesskeyid", "privatekey",
})

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, raw TEXT NOT NULL, model TEXT, usage TEXT,"
    " request TEXT NOT NULL, created_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS uses (key TEXT NOT NULL, nodeid TEXT NOT NULL, run_id TEXT NOT NULL,"
    " ts REAL NOT NULL, PRIMARY KEY (key, nodeid))",
    "CREATE INDEX IF NOT EXISTS uses_run ON uses (run_id)",
    "CREATE TABLE IF NOT EXISTS parsed (key TEXT NOT NULL, variant TEXT NOT NULL, verdict TEXT NOT NULL,"
    " PRIMARY KEY (key, variant))",
    f"INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', '{SCHEMA_VERSION}')",
)
_GET = ("SELECT r.raw, r.model, r.usage, r.created_at, r.request, p.verdict FROM replies r"
        " LEFT JOIN parsed p ON p.key = r.key AND p.variant = ? WHERE r.key = ?")
_UNSIZED = "SELECT 1 FROM replies WHERE instr(request, '\"max_tokens\":') = 0 LIMIT 1"
_MEMO = "INSERT OR REPLACE INTO parsed (key, variant, verdict) VALUES (?, ?, ?)"
FLUSH_EVERY = 256
"""Buffered writes (uses, parse memos) are flushed in one transaction this often, and at close."""
_PUT = ("INSERT INTO replies (key, raw, model, usage, request, created_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET raw = excluded.raw, model = excluded.model, usage = excluded.usage,"
        " request = excluded.request, created_at = excluded.created_at")
_USE = ("INSERT INTO uses (key, nodeid, run_id, ts) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (key, nodeid) DO UPDATE SET run_id = excluded.run_id, ts = excluded.ts")


def canonical_json(request: dict[str, Any]) -> str:
    """The one serialisation of a request used for keys and storage (sorted, compact, UTF-8)."""
    return json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def find_secret(obj: Any, _path: str = "", _depth: int = 0) -> str | None:
    """The dotted path of the first credential-like key in ``obj`` (or None)."""
    if _depth > 32:
        return None
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{_path}.{k}" if _path else str(k)
            if str(k).lower().replace("-", "").replace("_", "").replace(" ", "") in _SECRET_KEYS:
                return path
            found = find_secret(v, path, _depth + 1)
            if found:
                return found
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found = find_secret(v, f"{_path}[{i}]", _depth + 1)
            if found:
                return found
    return None


def _refuse_secrets(request: Any) -> None:
    if not isinstance(request, dict):
        raise TypeError(f"request must be a dict, not {type(request).__name__}")
    secret = find_secret(request)
    if secret is not None:
        raise ValueError(f"refusing a request with a credential-like key {secret!r}: the token is never part of "
                         "a cache key and never stored")


def cache_key(body: dict[str, Any], judge: str) -> str:
    """sha256 (hex) over the FULL request body and the judge service that answers it.

    ``body`` is the ``/v1/chat/completions`` body (model, judge fields or custom messages,
    generation parameters); ``judge`` names the service (a base URL's host:port, or the embedded
    server's fixed name), so two services never share a verdict. The token is never part of it --
    a body with an ``Authorization``/``api_key``-like key is refused (``ValueError``) before any
    call is paid for -- so rotating a token keeps the cache and the file holds no secret.
    """
    _refuse_secrets(body)
    canonical = json.dumps({"host": judge, "body": body}, sort_keys=True, ensure_ascii=False,
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    """One stored judge reply. Parse ``raw`` again to get the verdict (see module docstring)."""

    key: str
    raw: str
    model: str | None
    usage: dict | None
    created_at: float
    request: str
    """The request as canonical JSON (no credentials)."""
    parsed: str | None = None
    """A verdict parsed earlier from ``raw`` for the asked ``variant`` (parser version + reading options),
    so a warm hit skips the parser; a new parser version misses it and re-reads ``raw``."""


class VerdictCache:
    """Raw judge replies keyed by :func:`cache_key`, shared safely by xdist workers.

    ``path`` is the cache directory (the file is ``verdicts.sqlite3`` inside it) or a path
    ending in ``.sqlite3``/``.sqlite``/``.db`` naming the file itself. ``run_id`` identifies
    this test run for :meth:`touch`/:meth:`prune_unused`; every xdist worker must get the
    same one (the default is ``$PYTEST_XDIST_TESTRUNUID`` or a fresh uuid).
    """

    def __init__(self, path: Path | str, *, mode: CacheMode | str = CacheMode.USE, run_id: str | None = None) -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"cache mode must be one of {', '.join(CACHE_MODES)}; got {mode!r}")
        mode = CacheMode(mode)
        p = Path(path)
        if p.suffix in (".sqlite3", ".sqlite", ".db"):
            self.dir, self.db_path = p.parent, p
        else:
            self.dir, self.db_path = p, p / DB_FILENAME
        self.mode: CacheMode = mode
        self.run_id: str = run_id or os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
        self.warning: str | None = None
        self._off = mode is CacheMode.OFF
        self._db: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._inherited: list[sqlite3.Connection] = []
        self._pending_uses: list[tuple[str, str, str, float]] = []
        self._pending_memos: list[tuple[str, str, str]] = []
        self._unsized: bool | None = None
        """Whether any reply was stored for a body without ``max_tokens`` (None: not looked yet)."""
        self._aliases: dict[str, str] = {}
        """Read-only modes: key -> the key its adopted reply is stored under."""

    def __repr__(self) -> str:
        state = "disabled" if self._off and self.mode is not CacheMode.OFF else "open" if self._db else "closed"
        return f"VerdictCache({str(self.db_path)!r}, mode={self.mode.value!r}, {state})"

    # ------------------------------------------------------------------ connection

    def probe(self) -> str | None:
        """Open now (normally lazy) and return :attr:`warning`; for an early, single message."""
        if self._ready():
            with self._lock:
                self._connection()
        return self.warning

    def _ready(self) -> bool:
        """False when disabled; after a fork, forget (never use, never close) the parent's connection."""
        if self._off:
            return False
        if self._pid != os.getpid():
            self._lock = threading.RLock()
            if self._db is not None:
                self._inherited.append(self._db)  # closing it here could disturb the parent's locks
            self._db = None
            self._pid = os.getpid()
        return True

    def _connection(self) -> sqlite3.Connection | None:
        if self._db is None and not self._off:
            try:
                self._db = self._open_replay() if self.mode is CacheMode.REPLAY else self._open_rw()
            except (sqlite3.Error, OSError, ValueError) as exc:
                self._disable(self._describe(exc))
        return self._db

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            return f"{self.db_path} is not a usable SQLite database ({exc}); delete it to start a new cache"
        if isinstance(exc, OSError):
            return f"cannot create the cache directory {self.dir} ({exc.strerror or exc})"
        if isinstance(exc, ValueError):
            return f"{self.db_path}: {exc}"
        return f"cannot use {self.db_path} ({exc})"

    def _connect(self, target: str, *, uri: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(target, uri=uri, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                             check_same_thread=False, cached_statements=32)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return db

    def _open_rw(self) -> sqlite3.Connection:
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.dir / ".gitignore", "x", encoding="utf-8") as fh:
                fh.write("*\n")
        except FileExistsError:
            pass
        db = self._connect(str(self.db_path))
        try:
            for attempt in range(100):  # schema creation races between xdist workers
                try:
                    db.execute("PRAGMA journal_mode = WAL").fetchone()
                    db.execute("PRAGMA synchronous = NORMAL")
                    db.execute("BEGIN IMMEDIATE")
                    for statement in _SCHEMA:
                        db.execute(statement)
                    db.execute("COMMIT")
                    break
                except sqlite3.OperationalError as exc:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    if "locked" not in str(exc) and "busy" not in str(exc) or attempt == 99:
                        raise
                    time.sleep(0.01 + 0.002 * attempt)
            self._check_version(db)
        except BaseException:
            db.close()
            raise
        return db

    def _open_replay(self) -> sqlite3.Connection:
        if not self.db_path.is_file():
            raise ValueError("no cache file (replay mode reads a recorded cache; every lookup will miss)")
        base = self.db_path.resolve().as_uri()
        last: Exception | None = None
        # immutable=1 is the fallback for a read-only directory where no -shm can be made; it
        # ignores a -wal left by a killed writer, so it comes second.
        for suffix in ("?mode=ro", "?mode=ro&immutable=1"):
            db = self._connect(base + suffix, uri=True)
            try:
                db.execute(_GET, ("", "")).fetchone()
                self._check_version(db)
                return db
            except sqlite3.OperationalError as exc:
                db.close()
                last = exc
            except BaseException:
                db.close()
                raise
        assert last is not None
        raise last

    def _check_version(self, db: sqlite3.Connection) -> None:
        row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        if row is None or not str(row[0]).isdigit() or int(row[0]) > SCHEMA_VERSION:
            raise ValueError(f"schema version {row[0] if row else None!r} is not one this version can read")

    def _disable(self, reason: str) -> None:
        """Turn the cache off for the rest of the run, remembering the first reason."""
        self._off = True
        if self.warning is None:
            self.warning = f"pai-judge verdict cache disabled: {reason}"
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    def _failed(self, action: str, exc: sqlite3.Error) -> None:
        db = self._db
        if db is not None and db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        self._disable(f"{action} failed on {self.db_path} ({exc})")

    # ------------------------------------------------------------------ API

    def get(self, key: str, variant: str = "") -> CachedReply | None:
        """The stored reply for ``key``; None on a miss, in modes refresh/off, or when disabled.

        ``variant`` names a parse memo (see :meth:`remember_parse`) to return with the reply.
        """
        if not self.mode.reads or not self._ready():
            return None
        row = self._one(_GET, (variant, key))
        if row is None and key in self._aliases:
            row = self._one(_GET, (variant, self._aliases[key]))
        if row is None:
            return None
        raw, model, usage, created_at, request, parsed = row
        try:
            usage_dict = json.loads(usage) if usage else None
        except ValueError:
            usage_dict = None
        return CachedReply(key=key, raw=raw, model=model, usage=usage_dict, created_at=created_at, request=request,
                           parsed=parsed)

    @property
    def holds_unsized(self) -> bool:
        """Whether replies to bodies without ``max_tokens`` are stored (asked once; False when unreadable)."""
        if self._unsized is None:
            self._unsized = self.mode.reads and self._ready() and self._one(_UNSIZED, ()) is not None
        return self._unsized

    def _one(self, sql: str, args: tuple[Any, ...]) -> Any:
        """One row of a read, or None (also when the cache cannot be read: it then warns and turns off)."""
        with self._lock:
            db = self._db or self._connection()
            if db is None:
                return None
            try:
                return db.execute(sql, args).fetchone()
            except sqlite3.Error as exc:
                self._failed("reading", exc)
                return None

    def adopt(self, key: str, old_key: str, *, max_completion_tokens: int, request: dict) -> bool:
        """Give ``key`` the reply stored under ``old_key`` when it would have been the same.

        ``old_key``: the same request without ``max_tokens`` (the server's 2,048). A reply that ended within
        ``max_completion_tokens`` answers the capped request too; it moves to ``key`` (replay: read in place).
        """
        if not self.holds_unsized or self.get(key) is not None:
            return False
        old = self.get(old_key)
        spent = (old.usage or {}).get("completion_tokens") if old is not None else None
        if not (isinstance(spent, int) and 0 < spent <= max_completion_tokens):
            return False
        if not self.mode.writes:
            self._aliases[key] = old_key
            return True
        with self._lock:
            db = self._db or self._connection()
            if db is None:
                return False
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("UPDATE replies SET key = ?, request = ? WHERE key = ?", (key, canonical_json(request),
                                                                                    old_key))
                db.execute("UPDATE OR IGNORE parsed SET key = ? WHERE key = ?", (key, old_key))
                db.execute("UPDATE OR IGNORE uses SET key = ? WHERE key = ?", (key, old_key))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._failed("writing", exc)
                return False
        return True

    def remember_parse(self, key: str, variant: str, verdict_json: str) -> None:
        """Keep a parsed verdict next to its raw reply (buffered; a lost memo is just parsed again)."""
        if not self.mode.writes or not self._ready():
            return
        with self._lock:
            self._pending_memos.append((key, variant, verdict_json))
            if len(self._pending_memos) >= FLUSH_EVERY:
                self._flush()

    def _flush(self) -> None:
        """Write buffered uses and memos in one transaction (caller holds the lock)."""
        if not (self._pending_uses or self._pending_memos):
            return
        db = self._db or self._connection()
        uses, memos = self._pending_uses, self._pending_memos
        self._pending_uses, self._pending_memos = [], []
        if db is None:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(_USE, uses)
            db.executemany(_MEMO, memos)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._failed("writing", exc)

    def put(self, key: str, *, raw: str, model: str, usage: dict | None, request: dict,
            nodeid: str | None) -> None:
        """Store the judge's raw reply (one transaction) and record that ``nodeid`` used it.

        Raises ValueError for a request with a credential-like key, in every mode.
        """
        _refuse_secrets(request)
        if not isinstance(raw, str):
            raise TypeError(f"raw must be the judge's text, not {type(raw).__name__}")
        request_json = canonical_json(request)
        usage_json = json.dumps(usage, sort_keys=True) if usage is not None else None
        if not self.mode.writes or not self._ready():
            return
        now = time.time()
        with self._lock:
            db = self._db or self._connection()
            if db is None:
                return
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute(_PUT, (key, raw, model, usage_json, request_json, now))
                db.execute(_USE, (key, nodeid or "", self.run_id, now))
                db.execute("DELETE FROM parsed WHERE key = ?", (key,))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._failed("writing", exc)

    def touch(self, key: str, nodeid: str | None) -> None:
        """Record that ``nodeid`` used ``key`` in this run (call it on every cache hit).

        Buffered and flushed in batches and at :meth:`close`: a warm hit costs no write. A
        process killed before the flush loses only these marks (prune then keeps less, never more).
        """
        if not self.mode.writes or not self._ready():
            return
        with self._lock:
            self._pending_uses.append((key, nodeid or "", self.run_id, time.time()))
            if len(self._pending_uses) >= FLUSH_EVERY:
                self._flush()

    def flush(self) -> None:
        """Write buffered uses and parse memos now."""
        if self._ready():
            with self._lock:
                self._flush()

    def prune_unused(self, run_id: str) -> int:
        """Delete entries no test used (put or touch) in run ``run_id``; returns how many.

        Only meaningful after a complete run. A run that recorded no use at all prunes
        nothing: that is far likelier a wrong run id or an empty selection than a wish to
        empty the cache. No-op (0) in modes off and replay.
        """
        if not self.mode.writes or not self._ready():
            return 0
        with self._lock:
            self._flush()
            db = self._db or self._connection()
            if db is None:
                return 0
            try:
                db.execute("BEGIN IMMEDIATE")
                if db.execute("SELECT 1 FROM uses WHERE run_id = ? LIMIT 1", (run_id,)).fetchone() is None:
                    db.execute("COMMIT")
                    return 0
                cur = db.execute("DELETE FROM replies WHERE NOT EXISTS (SELECT 1 FROM uses"
                                 " WHERE uses.key = replies.key AND uses.run_id = ?)", (run_id,))
                removed = cur.rowcount
                db.execute("DELETE FROM uses WHERE NOT EXISTS (SELECT 1 FROM replies WHERE replies.key = uses.key)")
                db.execute("DELETE FROM parsed WHERE NOT EXISTS (SELECT 1 FROM replies WHERE replies.key = parsed.key)")
                db.execute("COMMIT")
                return max(removed, 0)
            except sqlite3.Error as exc:
                self._failed("pruning", exc)
                return 0

    def close(self) -> None:
        """Flush buffered writes and close this process's connection (idempotent; reopens lazily)."""
        with self._lock:
            if self._pid == os.getpid() and not self._off:
                self._flush()
            if self._db is not None and self._pid == os.getpid():
                try:
                    self._db.close()
                except sqlite3.Error:
                    pass
            self._db = None

    def __enter__(self) -> VerdictCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def completion_history(cache: VerdictCache, limit: int) -> list[tuple[str, str, int]]:
    """(model, mode, completion tokens) of the newest ``limit`` replies: what verdicts have cost before.

    Read over a read-only connection of its own (the cache's may be busy on another thread)."""
    cache.flush()
    if not cache.db_path.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"{cache.db_path.as_uri()}?mode=ro", uri=True, timeout=5)) as db:
            rows = db.execute("SELECT request, usage FROM replies WHERE usage IS NOT NULL ORDER BY created_at "
                              "DESC LIMIT ?", (limit,)).fetchall()
    except sqlite3.Error:
        return []
    found = []
    for request_text, usage_text in rows:
        try:
            request, usage = json.loads(request_text), json.loads(usage_text)
            content = request["messages"][-1]["content"]
            kind = content[0].get("mode", "single") if isinstance(content, list) else "custom"
            tokens = int(usage["completion_tokens"])
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            continue
        found.append((str(request.get("model") or ""), str(kind), tokens))
    return found
