"""Deferred mode's verdict source: concurrent online judge calls on a background event loop.

Each held request is sent the moment a test holds it, while later tests still run; at most
``--judge-concurrency`` calls are in flight (split across xdist workers). Replies are only
collected here; the settler stores them in the cache on the main thread (the cache's sqlite
connection is not thread-safe).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .. import errors
from ..breaker import Breaker
from ..client import JudgeClient, JudgeReply
from ..concurrency import OBSERVER, AdaptiveLimit
from ..request import JudgeRequest
from ..terminal import Console, plural
from .held import RawOutcome
from .sources import VerdictSource, Wanted

TICK_S = 0.1
"""How often the wait for the deferred calls wakes up: to log the tests whose verdicts are in (a few each time,
so the judging thread is never kept from the GIL for long) and to redraw the progress line."""


class OnlineJudge:
    """Concurrent online judge calls on a background event loop, at most ``limit`` in flight.

    ``keep`` (set by the deferred run) is called on the loop thread with every reply as soon as it
    is answered, so an answered verdict is in the cache at once (the cache's connection is shared
    under a lock); the main thread still drains ``finished`` for its own bookkeeping.
    """

    def __init__(self, client: Callable[[], JudgeClient], limit: AdaptiveLimit) -> None:
        self._client_factory = client
        self.limit = limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: JudgeClient | None = None
        self.futures: dict[str, concurrent.futures.Future[JudgeReply]] = {}
        self.finished: collections.deque[str] = collections.deque()
        """Keys whose call ended, in the order they ended (appended by the loop thread, drained by the main one)."""
        self.first_call: float | None = None
        """perf_counter() of the first call started, and of the last answer in: the judging span."""
        self.last_answer: float | None = None
        self.keep: Callable[[str, JudgeReply], None] | None = None
        self.breaker: Breaker | None = None
        """The run's circuit breaker: calls fail fast while the judge cannot be reached."""
        self.charge: Callable[[list[JudgeRequest], str], float | None] = lambda requests, what: None
        """The run's budget (``Judging.charge``): raises BudgetReached for a call past a cap."""
        self.settle: Callable[[float | None, dict[str, Any] | None], None] = lambda expected, usage: None

    def _start(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            # Import the SDK here, on the main thread, before the loop thread exists: openai imported
            # from two threads at once fails with "partially initialized module" errors.
            import openai  # noqa: F401

            self._client = self._client_factory()  # main thread: may start the embedded server
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                ready.set()
                loop.run_forever()

            self._thread = threading.Thread(target=run, name="pai-judge-deferred", daemon=True)
            self._thread.start()
            ready.wait()
            self._loop = loop
        return self._loop

    def submit(self, key: str, request: JudgeRequest) -> None:
        """Start judging ``request`` unless it is already in flight or done."""
        if key not in self.futures:
            loop = self._start()
            future = asyncio.run_coroutine_threadsafe(self._call(request), loop)
            self.futures[key] = future
            future.add_done_callback(functools.partial(self._finished, key))

    def _finished(self, key: str, future: concurrent.futures.Future[JudgeReply]) -> None:
        if self.keep is not None and not future.cancelled() and future.exception() is None:
            try:
                self.keep(key, future.result())
            except Exception:  # noqa: BLE001 - the reply is still drained and stored by the main thread
                pass
        self.finished.append(key)

    async def _call(self, request: JudgeRequest) -> JudgeReply:
        """One call in a slot of the limit; with the adaptive limit a 429 sends it back to the queue until
        429s have kept it waiting longer than the call's total timeout."""
        __tracebackhide__ = True
        expected = self.charge([request], request.describe())
        try:
            reply = await self._admitted(request)
        except BaseException:
            self.settle(expected, None)
            raise
        self.settle(expected, reply.usage)
        return reply

    async def _admitted(self, request: JudgeRequest) -> JudgeReply:
        __tracebackhide__ = True
        assert self._client is not None
        throttled_since: float | None = None
        while True:
            await self.limit.acquire()
            observing = OBSERVER.set(self.limit)
            try:
                if self.first_call is None:
                    self.first_call = time.perf_counter()
                refusal = self.breaker.refusal() if self.breaker is not None else None
                if refusal is not None:
                    raise refusal
                try:
                    reply = await self._client.asend(request)  # checked when it was held
                except errors.RateLimited as exc:
                    now = time.monotonic()
                    throttled_since = now if throttled_since is None else throttled_since
                    if self.limit.adaptive and now - throttled_since < self._client.total_timeout:
                        continue  # the judge asks us to slow down: not a failure, back to the queue
                    if self.breaker is not None:
                        self.breaker.observe(exc)
                    raise
                except errors.JudgeError as exc:
                    if self.breaker is not None:
                        self.breaker.observe(exc)
                    raise
                finally:
                    self.last_answer = time.perf_counter()
            finally:
                OBSERVER.reset(observing)
                self.limit.release()
            if self.breaker is not None:
                self.breaker.observe(None)
            return reply

    def outcome(self, key: str) -> RawOutcome | None:
        """The finished outcome for ``key``, or None while it is in flight (or was never sent)."""
        future = self.futures.get(key)
        if future is None or not future.done():
            return None
        if future.cancelled():
            return errors.JudgeError("the judge call was cancelled", code="Cancelled")
        exc = future.exception()
        return exc if exc is not None else future.result()

    def wait(self, keys: Iterable[str], tick: Callable[[int, int], None]) -> None:
        """Block until every ``key`` is done, calling ``tick(done, total)`` every :data:`TICK_S`."""
        not_done = {self.futures[k] for k in keys if k in self.futures}
        total = len(not_done)
        while True:
            _done, not_done = concurrent.futures.wait(not_done, timeout=TICK_S)  # only the calls still out
            tick(total - len(not_done), total)
            if not not_done:
                return

    def close(self) -> None:
        """Cancel what is still in flight, close the async HTTP pool on its own loop, stop the thread."""
        loop = self._loop
        if loop is None:
            return
        for future in self.futures.values():
            future.cancel()
        if self._client is not None:
            client = self._client

            async def aclose() -> None:
                await client.async_sdk().close()

            try:
                asyncio.run_coroutine_threadsafe(aclose(), loop).result(timeout=5)
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not loop.is_running():
            loop.close()
        self._loop = None


class OnlineSource(VerdictSource):
    """:class:`OnlineJudge` behind the verdict-source interface."""

    calls_on_workers = True
    early = True

    def __init__(self, client: Callable[[], JudgeClient], limit: AdaptiveLimit) -> None:
        self.calls = OnlineJudge(client, limit)

    def submit(self, key: str, request: JudgeRequest) -> None:
        self.calls.submit(key, request)

    def in_flight(self, key: str) -> concurrent.futures.Future[JudgeReply] | None:
        return self.calls.futures.get(key)

    def outcome(self, key: str) -> RawOutcome | None:
        return self.calls.outcome(key)

    def drain(self) -> Iterator[tuple[str, RawOutcome]]:
        finished = self.calls.finished
        while finished:  # only the calls that ended since the last drain: O(1) per test, not O(calls)
            key = finished.popleft()
            outcome = self.calls.outcome(key)
            if outcome is not None:
                yield key, outcome

    def resolve(self, wanted: Wanted, console: Console, *, needed: int, on_progress: Callable[[], None],
                store: Callable[[str, JudgeRequest, JudgeReply], None]) -> dict[str, RawOutcome]:
        """Send what is not in flight yet, then wait for every wanted call (``needed``: all the run waits for)."""
        calls = self.calls
        for key, (request, _nodeid) in wanted.items():
            calls.submit(key, request)
        keys = list(wanted)
        waiting = sum(1 for k in keys if calls.outcome(k) is None)
        needed = max(needed, len(keys))
        console.line(f"pai-judge: judging {plural(needed, 'deferred verdict')} "
                     f"({needed - waiting:,} already in; {calls.limit.allowed} concurrent calls now, "
                     f"{'adapting' if calls.limit.adaptive else 'fixed'})…")
        started = time.perf_counter()

        def tick(done: int, total: int) -> None:
            on_progress()
            console.progress(f"pai-judge: {done:,}/{total:,} verdicts in, {time.perf_counter() - started:.1f}s")

        calls.wait(keys, tick)
        on_progress()
        console.end()
        if calls.first_call is not None and calls.last_answer is not None:
            span = calls.last_answer - calls.first_call
            failed = sum(1 for f in calls.futures.values() if f.done() and not f.cancelled() and f.exception())
            answered = len(calls.futures) - failed
            console.line(f"pai-judge: {plural(answered, 'verdict')} judged in {span:.2f}s from the "
                         f"first call to the last answer" + (f", {plural(failed, 'call')} failed" if failed else "")
                         + f" (concurrent calls: {calls.limit.text()})")
        return {k: o for k in keys if (o := calls.outcome(k)) is not None}

    def worker_outcomes(self, keys: Iterable[str], *, wait: bool) -> dict[str, RawOutcome]:
        keys = [k for k in keys if k in self.calls.futures]
        if wait:
            try:
                self.calls.wait(keys, lambda done, total: None)
            except KeyboardInterrupt:
                pass
        return {k: o for k in keys if (o := self.calls.outcome(k)) is not None}

    def interrupted_text(self) -> str:
        return "interrupted (Ctrl-C) while waiting for the deferred verdicts"

    def close(self) -> None:
        self.calls.close()
