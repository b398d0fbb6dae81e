"""How the server calls an upstream model: a FIFO queue of at most N calls in flight, and its retry policy.

Why the server queues rather than the model: a call waiting in this queue costs the model nothing,
is counted (``GET /_pai_judge/stats``) and is dropped the moment its client goes away, while a
call waiting in a one-slot model server's own queue (llama.cpp) runs its timeout clock there and
is often still generated after everyone stopped waiting for it.

Why a retry policy of our own instead of the openai SDK's ``max_retries``: the SDK also resends a
call that timed out, and a model that is slow, not gone, is then asked to do the same work twice
while it still works on the first (against llama.cpp that made 22 extra upstream requests). Here
a timed-out call is resent only when ``upstream_retry_timeouts`` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections import Counter
from collections.abc import AsyncIterator

import openai

from ..concurrency import AdaptiveLimit

log = logging.getLogger("pytest_pai_judge.server.upstream")

QUEUE_DEPTH = "upstream_queue_depth"
"""Calls waiting for a slot right now (a gauge, in the stats counter)."""
IN_FLIGHT = "upstream_in_flight"
"""Upstream calls holding a slot right now (a gauge)."""
QUEUED = "upstream_queued"
"""Calls that had to wait for a slot (a total)."""
QUEUE_PEAK = "upstream_queue_peak"
"""The most calls that ever waited at once."""
CANCELLED_QUEUED = "upstream_cancelled_queued"
"""Calls whose client left while they waited: they never reached the upstream."""
STARTED = "upstream_calls_started"
"""HTTP requests sent upstream, resends included."""
FINISHED = "upstream_calls_finished"
"""Upstream requests that came back: an answer, an error status or a timeout."""
CANCELLED = "upstream_calls_cancelled"
"""Upstream requests abandoned while running because their client left (the connection is closed)."""
FAILED = "upstream_calls_failed"
"""Finished upstream requests that failed (error status, timeout, connection error)."""
TIMEOUTS = "upstream_timeouts"
"""Upstream requests that timed out (``--upstream-timeout``)."""
RETRIES = "upstream_retries"
"""Resends of failed upstream requests (``--upstream-retries``)."""
LIMIT = "upstream_limit"
"""Calls the queue lets run at once right now (a gauge): ``--upstream-concurrency``, less after 429s."""
THROTTLED = "upstream_throttled"
"""429 answers from the upstream (a total)."""

COUNTERS = (QUEUE_DEPTH, IN_FLIGHT, QUEUED, QUEUE_PEAK, CANCELLED_QUEUED, STARTED, FINISHED, CANCELLED, FAILED,
            TIMEOUTS, RETRIES, LIMIT, THROTTLED)

INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
MAX_RETRY_AFTER_S = 60.0
"""A ``retry-after`` beyond this is not waited for: the call fails and its client decides."""


class Requeue(Exception):
    """A 429 with adaptive slots: the call gives its slot back and queues again (``error`` is the 429)."""

    def __init__(self, error: openai.APIError) -> None:
        super().__init__(str(error))
        self.error = error


class UpstreamQueue:
    """At most ``limit`` calls hold a slot; the rest wait in arrival order (first come, first served).

    The slots are a :class:`~pytest_pai_judge.concurrency.AdaptiveLimit` (strictly FIFO, which
    ``asyncio.Semaphore`` is not on Python 3.10); this class counts what they do in the server's
    stats. A waiter cancelled before its turn (its client left) leaves the queue without ever
    holding a slot. With ``adaptive`` the slots follow a rate-limited upstream (429s only: an LLM's
    latency follows its answer's length): a 429 halves them and holds new calls for its
    ``retry-after``; answers bring them back, never past ``limit``.
    """

    def __init__(self, limit: int, stats: Counter[str], *, adaptive: bool = True) -> None:
        if limit < 1:
            raise ValueError(f"upstream concurrency must be >= 1, got {limit}")
        self.limit = limit
        self.control = AdaptiveLimit(limit, limit, adaptive=adaptive, latency_signal=False)
        self.stats = stats
        for key in COUNTERS:  # shown as 0 in the stats before anything happened
            stats.setdefault(key, 0)
        stats[QUEUE_DEPTH] = 0
        stats[IN_FLIGHT] = 0
        stats[LIMIT] = limit

    def answered(self, seconds: float) -> None:
        """An upstream answer: the limit may grow back (and a waiter get its turn)."""
        self.control.answered(seconds)
        self._gauges()

    def rate_limited(self, retry_after: float | None, started: float) -> None:
        """A 429 to an attempt sent at ``started`` (loop time): fewer slots, and a pause for new calls."""
        self.stats[THROTTLED] += 1
        self.control.rate_limited(retry_after, started)
        self._gauges()

    @property
    def depth(self) -> int:
        """Calls waiting for a slot."""
        return self.control.waiting

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``limit`` slots for the body of the ``async with``."""
        await self._acquire()
        try:
            yield
        finally:
            self.control.release()
            self._gauges()

    async def _acquire(self) -> None:
        queued = not self.control.free
        if queued:
            self.stats[QUEUED] += 1
            self.stats[QUEUE_DEPTH] = self.control.waiting + 1
            self.stats[QUEUE_PEAK] = max(self.stats[QUEUE_PEAK], self.control.waiting + 1)
            log.info("upstream call queued: %d waiting, %d of %d slots busy", self.control.waiting + 1,
                     self.control.in_flight, self.control.allowed)
        try:
            await self.control.acquire()
        except asyncio.CancelledError:
            if queued:  # it left before its turn came (or just as it came): it never reached the upstream
                self.stats[CANCELLED_QUEUED] += 1
                log.info("queued upstream call cancelled before it was sent (its client left); %d waiting",
                         self.control.waiting)
            self._gauges()
            raise
        self._gauges()

    def _gauges(self) -> None:
        self.stats[QUEUE_DEPTH] = self.control.waiting
        self.stats[IN_FLIGHT] = self.control.in_flight
        self.stats[LIMIT] = self.control.allowed


def is_retryable(exc: openai.APIError, *, retry_timeouts: bool) -> bool:
    """Whether the server resends a failed upstream call: a connection error, 429 or 5xx; a timeout only
    when asked (the model may still be generating the first answer)."""
    if isinstance(exc, openai.APITimeoutError):
        return retry_timeouts
    if isinstance(exc, openai.APIConnectionError):
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code == 429 or exc.status_code >= 500)


def retry_after_s(exc: openai.APIError) -> float | None:
    """The upstream's ``retry-after-ms`` / ``retry-after`` (seconds) on an error status, if it sent one."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name, "")) * scale
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            return value
    return None


def retry_delay_s(exc: openai.APIError, attempt: int) -> float | None:
    """How long to wait before resend number ``attempt + 1``; None: the upstream asked for too long a wait.

    The upstream's retry-after wins; otherwise the openai SDK's backoff (0.5 s doubling to 8 s, minus up to
    25% jitter).
    """
    asked = retry_after_s(exc)
    if asked is not None:
        return asked if asked <= MAX_RETRY_AFTER_S else None
    return min(INITIAL_RETRY_DELAY_S * 2.0 ** attempt, MAX_RETRY_DELAY_S) * (1 - 0.25 * random.random())
