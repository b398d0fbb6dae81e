"""``--rate-limit``: answer like a rate-limited service, so clients can be tested against one.

``20/s`` admits 20 chat completions a second (a token bucket holding one second's worth, so a
burst of 20 passes and then one every 50 ms); ``8`` admits 8 in flight at once; ``20/s,8`` both.
A request beyond the limit is answered at once with 429 ``RateLimited`` and the headers
``retry-after-ms`` (when the next request would be admitted) and ``retry-after`` (the same, in
whole seconds, at least 1), as throttling gateways answer. Only ``POST /v1/chat/completions`` is
limited; files, batches and model listings are not (a batch's lines are judged inside the server).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from .errors import rate_limited
from .responses import error_response

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
LIMITED_PATH = "/v1/chat/completions"
_RATE = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*/\s*(?P<unit>s|sec|second|m|min|minute)$")
CONCURRENT_RETRY_S = 0.1
"""What a request refused for the concurrency limit is told to wait (no request's end can be foreseen)."""


@dataclass(frozen=True)
class RateLimit:
    per_second: float | None = None
    concurrent: int | None = None

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``20/s``, ``1200/min``, ``8`` (concurrent), or both comma-separated; a clear error otherwise."""
        per_second: float | None = None
        concurrent: int | None = None
        for part in (p.strip() for p in text.split(",") if p.strip()):
            match = _RATE.match(part)
            if (match and per_second is not None) or (not match and part.isdigit() and concurrent is not None):
                raise ValueError(f"--rate-limit {text!r}: give at most one rate and one concurrency")
            if match:
                n = float(match["n"])
                per_second = n / 60 if match["unit"].startswith("m") else n
            elif part.isdigit():
                concurrent = int(part)
            else:
                raise ValueError(f"--rate-limit: {part!r} is neither requests per time (e.g. 20/s, 1200/min) nor "
                                 "a number of concurrent requests (e.g. 8)")
        if per_second is None and concurrent is None:
            raise ValueError("--rate-limit needs requests per time (20/s) and/or concurrent requests (8)")
        if (per_second is not None and per_second <= 0) or (concurrent is not None and concurrent < 1):
            raise ValueError(f"--rate-limit {text!r}: the limits must be positive")
        return cls(per_second, concurrent)

    def text(self) -> str:
        parts = ([f"{self.per_second:g}/s"] if self.per_second is not None else []) + \
            ([f"{self.concurrent} concurrent"] if self.concurrent is not None else [])
        return ", ".join(parts)


class RateLimiter:
    """A token bucket and an in-flight count (the server's event loop is one thread: no lock needed)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self.capacity = max(1.0, limit.per_second or 0.0)
        self.tokens = self.capacity
        self.updated = clock()
        self.in_flight = 0

    def admit(self) -> float | None:
        """None: admitted (call :meth:`release` when done); else the seconds until one would be."""
        now = self.clock()
        if self.limit.per_second is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.limit.per_second)
            self.updated = now
        if self.limit.concurrent is not None and self.in_flight >= self.limit.concurrent:
            return CONCURRENT_RETRY_S
        if self.limit.per_second is not None:
            if self.tokens < 1:
                return (1 - self.tokens) / self.limit.per_second
            self.tokens -= 1
        self.in_flight += 1
        return None

    def release(self) -> None:
        self.in_flight -= 1


class RateLimitMiddleware:
    """Pure ASGI: refuse chat completions beyond the limit with 429 before the body is read."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: RateLimit | None,
                 stats: MutableMapping[str, int] | None = None) -> None:
        self.app = app
        self.limiter = RateLimiter(limit) if limit is not None else None
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.limiter
        if limiter is None or scope["type"] != "http" or scope.get("method") != "POST" \
                or scope.get("path") != LIMITED_PATH:
            await self.app(scope, receive, send)
            return
        wait = limiter.admit()
        if wait is not None:
            if self.stats is not None:
                self.stats["rate_limited"] = self.stats.get("rate_limited", 0) + 1
            ms = max(1, math.ceil(wait * 1000))
            headers = {"retry-after-ms": str(ms), "retry-after": str(max(1, math.ceil(wait)))}
            await error_response(rate_limited(ms), headers)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            limiter.release()
