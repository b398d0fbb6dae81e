"""Settings of the local PAI-compatible judge server, shared by the CLI, the app and the embedded runner."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..protocol import DEFAULT_MODELS

FaultKind = Literal["429", "500", "500once", "timeout", "unreadable", "greennet"]
FAULT_KINDS: tuple[str, ...] = ("429", "500", "500once", "timeout", "unreadable", "greennet")
"""``500once``: a 500 the first time the server sees a request (by its judge content), then normal replies
-- the transient failure that retries exist for."""


@dataclass(frozen=True)
class Fault:
    """Every request whose question / last user message contains ``pattern`` fails with ``kind``."""

    pattern: str
    kind: FaultKind

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Parse ``PATTERN=KIND`` (the CLI's ``--fault``); the pattern may itself contain ``=``."""
        pattern, sep, kind = spec.rpartition("=")
        if not sep or not pattern:
            raise ValueError(f"--fault expects PATTERN=KIND, got {spec!r}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"--fault kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
        return cls(pattern, kind)  # type: ignore[arg-type]


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port."""
    token: str | None = field(default=None, repr=False)
    """When set, ``Authorization: Bearer <token>`` is required. Never logged."""
    data_dir: Path | None = None
    """SQLite database and uploaded / generated files. None: a fresh temporary directory."""
    engine: str = "lexical"
    """``lexical``, ``openai``, or a dotted path ``package.module:Class`` of a JudgeEngine."""
    models: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    """Served model names and their context length in tokens."""
    context_limit_auto: bool = False
    """``--context-limit auto``: at startup the ``openai`` engine asks the upstream model server for its context
    length (:func:`.upstream_info.context_length`) and serves every model with it; startup fails if it cannot tell."""
    status_dialect: Literal["pai", "openai"] = "pai"
    """Batch status words: PAI's (``Creating`` ... ``Succeeded``) or OpenAI's (``validating`` ... ``completed``)."""
    latency_ms: int = 0
    """Fixed delay per judgement, awaited without holding the event loop."""
    faults: list[Fault] = field(default_factory=list)
    batch_concurrency: int = 16
    """Batch lines judged at once."""
    batch_window_s: float = 86400.0
    """How long a batch may run before it is Expired. The API only accepts ``completion_window="24h"``;
    tests shrink this to see expiry."""
    upstream_base_url: str | None = None
    upstream_model: str | None = None
    upstream_api_key_env: str = "UPSTREAM_API_KEY"
    """Name of the environment variable holding the upstream model's key (the key itself is never stored)."""
    upstream_concurrency: int = 1
    """Upstream calls of the ``openai`` engine in flight at once (``--upstream-concurrency``); the rest wait in
    the server's FIFO queue, where a call whose client leaves is dropped before it costs the model anything.
    1 fits a one-slot model server (llama.cpp's default); raise it to the upstream's parallel slots (vLLM's
    ``--max-num-seqs``, Ollama's ``OLLAMA_NUM_PARALLEL``, llama.cpp's ``--parallel``)."""
    upstream_token_count: bool = True
    """``openai`` engine: count prompt tokens (context check, usage) with the upstream's own tokenizer where it
    offers one (:class:`.upstream_info.TokenCounter`); False, or an upstream without one: the local estimate."""
    upstream_adapt: bool = True
    """Whether the upstream slots follow a rate-limited upstream (``--no-upstream-adapt``: fixed): a 429 halves
    them and holds new calls for its ``retry-after``; answers bring them back up to ``upstream_concurrency``."""
    upstream_timeout_s: float = 120.0
    """Timeout of one upstream call, from the moment it is sent (time spent in the queue does not count)."""
    upstream_max_retries: int = 2
    """Resends of an upstream call that failed with a connection error, 429 or 5xx (``--upstream-retries``),
    after the upstream's retry-after or the SDK's backoff."""
    upstream_retry_timeouts: bool = False
    """Whether a timed-out upstream call is resent too (within ``upstream_max_retries``). Off: the model may
    still be working on it, and the caller (the plugin) has its own policy for timeouts."""
    body_timeout_s: float = 5.0
    """Longest silence while a request body is being received (as nginx's ``client_body_timeout``): a body
    that stops arriving short of its Content-Length is answered 408 RequestTimeout and its connection closed."""
    fault_timeout_s: float = 30.0
    """How long a ``timeout`` fault holds its request (or until shutdown) before answering 500."""
    rate_limit: str | None = None
    """``--rate-limit``: requests per second and / or concurrent requests (``20/s``, ``8``, ``20/s,8``) beyond
    which chat completions get 429 with ``retry-after`` (see :mod:`.rate_limit`). None: no limit."""
    log_level: str = "warning"

    def resolved_data_dir(self) -> Path:
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="pai-judge-server-"))
        path = Path(self.data_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
