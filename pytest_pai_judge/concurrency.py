"""Deferred mode's calls in flight: a limit that adapts to the judge (AIMD), or a fixed one.

A rate-limited judge answers 429 with ``retry-after`` when asked too fast; an overloaded one
answers ever more slowly. Either way more concurrent calls buy nothing. The limit starts at
``--judge-concurrency`` and follows the judge, the way TCP follows a network:

- **additive increase**: every call answered in good time raises the limit by ``1 / limit``
  (about one more call in flight per round trip), up to ``--judge-max-concurrency``;
- **multiplicative decrease**: a 429 halves it and holds new calls until its ``retry-after``
  has passed; an answer slower than ``LATENCY_FACTOR`` times the fastest seen (the judge
  queueing our calls) cuts it by a quarter. Only a call started after the last cut can cut
  again, so one burst of 429s counts once (as TCP counts one loss per window).

A call refused with 429 is not a failure while the judge keeps asking us to wait: it goes back
in the queue (see :mod:`pytest_pai_judge.deferred.online`). ``--no-judge-adapt`` keeps the limit
fixed at ``--judge-concurrency``. Single-threaded: every method runs on the deferred loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import time
from collections.abc import Callable
from typing import Protocol

LATENCY_FACTOR = 2.0
"""An answer this many times slower than the fastest seen means the judge is queueing our calls."""
INCREASE = 1.0
"""Added to the limit per round trip of successes (``INCREASE / limit`` per answered call)."""
DECREASE_429 = 0.5
DECREASE_SLOW = 0.75


class AttemptObserver(Protocol):
    """Told about every attempt of a judge call, by the HTTP transport (:mod:`pytest_pai_judge.call_policy`)."""

    def answered(self, seconds: float) -> None: ...

    def rate_limited(self, retry_after: float | None, started: float | None = None) -> None: ...


OBSERVER: contextvars.ContextVar[AttemptObserver | None] = contextvars.ContextVar("pai_judge_observer",
                                                                                  default=None)
"""The observer of the judge call running in this asyncio task (deferred mode sets it around each call)."""


class AdaptiveLimit:
    """How many judge calls may be in flight now; ``acquire`` / ``release`` around each call."""

    def __init__(self, start: int, ceiling: int, *, adaptive: bool = True, latency_signal: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.start = max(1, int(start))
        self.ceiling = max(self.start, int(ceiling)) if adaptive else self.start
        self.adaptive = adaptive
        self.latency_signal = latency_signal
        """Whether slow answers cut the limit (off where answer length, not queueing, sets the latency)."""
        self.limit = float(self.start)
        self.clock = clock
        self.in_flight = 0
        self.paused_until = 0.0
        self.fastest: float | None = None
        self.last_cut = -1e9
        self.throttled = 0
        """429 answers seen (each attempt, retries included)."""
        self.peak = self.start
        self.trace: list[tuple[float, float]] = [(clock(), self.limit)]
        """(time, limit) at each change: how the limit moved, for the run's summary line and benchmarks."""
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._wake_pending = False

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit))

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot."""
        return len(self._waiters)

    @property
    def free(self) -> bool:
        """Whether a call would get its slot at once (one is free, nobody waits, no pause)."""
        return self.in_flight < self.allowed and not self._waiters and self.paused_until <= self.clock()

    async def acquire(self) -> None:
        """Wait for a free slot (and for a 429's retry-after to pass); first come, first served.

        A waiter is handed its slot by whoever frees one (or by the wake-up at the end of a pause), so
        no wake-up is ever lost: the slot is counted as taken before the waiter runs again."""
        if self.free:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a slot just as it was cancelled
                self.release()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        """Hand free slots to the longest waiters; during a pause, come back when it ends."""
        pause = self.paused_until - self.clock()
        if pause > 0:
            if self._waiters and not self._wake_pending:
                self._wake_pending = True
                asyncio.get_running_loop().call_later(pause, self._wake_after_pause)
            return
        while self._waiters and self.in_flight < self.allowed:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self.in_flight += 1

    def _wake_after_pause(self) -> None:
        self._wake_pending = False
        self._wake()

    # ------------------------------------------------------------------ what the judge said

    def answered(self, seconds: float) -> None:
        """A call answered (any status but 429) after ``seconds``."""
        if not self.adaptive:
            return
        if self.fastest is None or seconds < self.fastest:
            self.fastest = seconds
        if self.latency_signal and seconds > LATENCY_FACTOR * self.fastest and seconds > 0.05:
            self._cut(DECREASE_SLOW, self.clock() - seconds)
            return
        if self.limit < self.ceiling:
            self._set(min(float(self.ceiling), self.limit + INCREASE / self.limit))
            self._wake()

    def rate_limited(self, retry_after: float | None, started: float | None = None) -> None:
        """A 429 to an attempt made at ``started`` (monotonic; None: now): hold new calls for ``retry_after``
        seconds and halve the limit, unless the attempt was made before the last cut."""
        self.throttled += 1
        if not self.adaptive:
            return  # a fixed limit: the SDK's own retries (after retry-after) are all there is
        wait = retry_after if retry_after is not None and retry_after > 0 else 1.0
        self.paused_until = max(self.paused_until, self.clock() + wait)
        self._cut(DECREASE_429, self.clock() if started is None else started)

    def _cut(self, factor: float, started: float) -> None:
        if started < self.last_cut:
            return  # that call was sent at the old limit: its news is already counted
        self.last_cut = self.clock()
        self._set(max(1.0, self.limit * factor))

    def _set(self, limit: float) -> None:
        if int(limit) != int(self.limit):
            self.trace.append((self.clock(), limit))
        self.limit = limit
        self.peak = max(self.peak, self.allowed)

    def text(self) -> str:
        """``adaptive 8 -> 4 (peak 11, 37 x 429)`` or ``fixed 8``, for the run's summary line."""
        if not self.adaptive:
            return f"fixed {self.start}" + (f", {self.throttled} x 429" if self.throttled else "")
        return (f"adaptive {self.start} -> {self.allowed} (peak {self.peak}, ceiling {self.ceiling}"
                + (f", {self.throttled} x 429" if self.throttled else "") + ")")
