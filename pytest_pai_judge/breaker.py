"""The failure policy's circuit breaker: when calls to a judge that cannot be reached fail fast.

One breaker per pytest process, shared by immediate-mode calls and deferred mode's concurrent
calls, so a judge that goes down mid-run costs each remaining test nothing instead of its own
timeouts and retries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from . import errors

UNREACHABLE_AFTER = 2
"""Consecutive calls that could not reach the judge (after retries) before later ones fail fast."""
PROBE_EVERY_S = 2.0
"""While calls fail fast, one call in this many seconds is tried anyway; one that gets through closes it."""


class Breaker:
    """Fails calls fast once the judge cannot be reached; only "cannot reach" counts.

    Opens after :data:`UNREACHABLE_AFTER` consecutive connection failures (refused, reset, no
    route), after the SDK's own retries. A timeout, a 5xx or any reply means the judge is there,
    so it closes the breaker again, as does a probe (one call every :data:`PROBE_EVERY_S` while it
    is open) that gets through.
    """

    def __init__(self, retries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.retries = retries
        self.clock = clock
        self.failures: list[errors.JudgeError] = []
        self.last_try = 0.0
        self._lock = threading.Lock()  # deferred mode's calls ask from the judging thread

    def refusal(self) -> errors.JudgeError | None:
        """The error a call fails fast with now, or None to try it (closed, or time for a probe)."""
        with self._lock:
            if len(self.failures) < UNREACHABLE_AFTER or self.clock() - self.last_try >= PROBE_EVERY_S:
                self.last_try = self.clock()
                return None
            first = self.failures[0]
        return type(first)(f"not sent: the judge failed the last {len(self.failures)} calls of this run the same way "
                           f"(first: {first.message}); later tests fail fast instead of waiting {self.retries} "
                           f"retries each, and one call every {PROBE_EVERY_S:g}s is tried again", status=first.status,
                           code=first.code, hint=first.hint)

    @property
    def open(self) -> bool:
        """Whether the last :data:`UNREACHABLE_AFTER` calls in a row could not reach the judge."""
        with self._lock:
            return len(self.failures) >= UNREACHABLE_AFTER

    def observe(self, exc: BaseException | None) -> None:
        """After a call: None (a reply), or its exception."""
        with self._lock:
            if isinstance(exc, errors.JudgeConnectionError):
                self.failures.append(exc)
                self.last_try = self.clock()  # the next probe is due a while after this failure, not its start:
                # a probe that spent its retries longer than the interval would let every later call probe too
            else:
                self.failures.clear()
