"""The per-call failure policy the SDK cannot express: no resend after a timeout, and a total budget.

The ``openai`` SDK retries (with backoff and ``retry-after``) 408/409/429/5xx and connection
errors; we keep that. Two things it would do wrong for a judge are decided here, in an HTTP
transport under the SDK's own client (``http_client=``, a documented SDK parameter):

- **A request that timed out waiting for its answer is not resent** unless it only reads state
  (GET). The judge may still be working on it: a resend pays twice, and against a model server
  that works one request at a time it queues a second copy behind the first. Timeouts before
  the request reached the judge (connect, pool) are resent as before. The transport raises the
  SDK's own ``APITimeoutError``, which the SDK passes through without retrying.
- **A total time budget per call** (``--judge-total-timeout``), across every attempt and the
  waits between them: each attempt's read timeout is cut to what is left, and an attempt that
  would start after the budget is spent is not made.

It also tells deferred mode's adaptive limit (:mod:`pytest_pai_judge.concurrency`, through
:data:`OBSERVER`) what each attempt met: a 429 and its ``retry-after``, or how long an answer took.
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import openai

from .concurrency import OBSERVER


@dataclass
class CallBudget:
    """One judge call's deadline and what its attempts met (for the error text)."""

    total_s: float
    started: float = field(default_factory=time.monotonic)
    attempts: int = 0
    last: str = ""
    """What the last attempt met: "HTTP 500", "connection failed", ... (empty: not known)."""
    unreachable: bool = False
    """The last attempt could not reach the judge (the circuit breaker counts those)."""

    @property
    def left_s(self) -> float:
        return self.total_s - (time.monotonic() - self.started)


CURRENT: contextvars.ContextVar[CallBudget | None] = contextvars.ContextVar("pai_judge_call_budget", default=None)
"""The budget of the judge call running in this thread / asyncio task (None: a files or batches call)."""


def retry_after_s(headers: Any) -> float | None:
    """The wait a 429 asks for: ``retry-after-ms``, else ``retry-after`` in seconds (a date is not read)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) / scale
            except ValueError:
                continue
    return None


def _observe(response: Any, started: float) -> None:
    observer = OBSERVER.get()
    if observer is None:
        return
    if response.status_code == 429:
        observer.rate_limited(retry_after_s(response.headers), started)
    elif response.status_code < 400:
        observer.answered(time.monotonic() - started)


class TimeoutNotResent(openai.APITimeoutError):
    """The judge did not answer in time, and the request was not resent (it may still be at work on it)."""

    def __init__(self, request: Any, waited_s: float, attempt: int) -> None:
        super().__init__(request=request)
        self.waited_s = waited_s
        self.attempt = attempt


class BudgetSpent(openai.APITimeoutError):
    """The call's total time budget ran out before it got an answer."""

    def __init__(self, request: Any, budget: CallBudget) -> None:
        super().__init__(request=request)
        self.budget = budget


def http_library() -> ModuleType:
    """The HTTP library the installed SDK is built on (``httpx`` for openai 1.x, ``httpx2`` later)."""
    for base in openai.DefaultHttpxClient.__mro__:
        root = base.__module__.split(".")[0]
        if root != "openai" and base.__name__ == "Client":
            return sys.modules[root]
    raise RuntimeError("cannot tell which HTTP library the openai SDK uses")  # pragma: no cover


def _resendable(request: Any) -> bool:
    return request.method == "GET"


def _before_attempt(request: Any) -> CallBudget | None:
    """Count the attempt; refuse it past the budget; cut its read timeout to what is left."""
    budget = CURRENT.get()
    if budget is None:
        return None
    left = budget.left_s
    if left <= 0:
        raise BudgetSpent(request, budget)
    budget.attempts += 1
    timeouts = dict(request.extensions.get("timeout") or {})
    for phase in ("connect", "read", "write", "pool"):
        if timeouts.get(phase) is None or timeouts[phase] > left:
            timeouts[phase] = left
    request.extensions["timeout"] = timeouts
    return budget


def _after_attempt(budget: CallBudget | None, *, status: int | None = None, unreachable: bool = False,
                   what: str = "") -> None:
    if budget is not None:
        budget.last = what or (f"HTTP {status}" if status is not None else "")
        budget.unreachable = unreachable


def _timed_out(request: Any, exc: BaseException, started: float, budget: CallBudget | None) -> BaseException:
    """The exception a read timeout becomes: the SDK's (not resent) or the library's own (resent)."""
    _after_attempt(budget, what="timed out")
    if budget is not None and budget.left_s <= 0:
        return BudgetSpent(request, budget)
    if _resendable(request):
        return exc
    return TimeoutNotResent(request, time.monotonic() - started, budget.attempts if budget else 1)


@dataclass
class _Attempt:
    """One attempt of a call: its request, the call's budget, and when it started."""

    request: Any
    budget: CallBudget | None
    started: float = field(default_factory=time.monotonic)


def policy_transport(lib: ModuleType, *, asynchronous: bool) -> Any:
    """An HTTP transport of ``lib`` applying this module's policy; the SDK's client is built on it."""
    unreachable_errors = (lib.ConnectError, lib.RemoteProtocolError)

    @contextmanager
    def guarded(attempt: _Attempt, *, connecting: bool = False) -> Iterator[None]:
        """A read timeout becomes the policy's exception; a failed connection is noted for the budget's text."""
        try:
            yield
        except lib.ReadTimeout as exc:
            raise _timed_out(attempt.request, exc, attempt.started, attempt.budget) from exc
        except unreachable_errors:
            if connecting:
                _after_attempt(attempt.budget, unreachable=True, what="cannot connect")
            raise

    class SyncStream(lib.SyncByteStream):  # type: ignore[name-defined]
        def __init__(self, inner: Any, attempt: _Attempt) -> None:
            self.inner, self.attempt = inner, attempt

        def __iter__(self) -> Iterator[bytes]:
            with guarded(self.attempt):
                yield from self.inner

        def close(self) -> None:
            self.inner.close()

    class AsyncStream(lib.AsyncByteStream):  # type: ignore[name-defined]
        def __init__(self, inner: Any, attempt: _Attempt) -> None:
            self.inner, self.attempt = inner, attempt

        async def __aiter__(self) -> AsyncIterator[bytes]:
            with guarded(self.attempt):
                async for chunk in self.inner:
                    yield chunk

        async def aclose(self) -> None:
            await self.inner.aclose()

    class PolicyTransport(lib.HTTPTransport):  # type: ignore[name-defined]
        def handle_request(self, request: Any) -> Any:
            attempt = _Attempt(request, _before_attempt(request))
            with guarded(attempt, connecting=True):
                response = super().handle_request(request)
            _after_attempt(attempt.budget, status=response.status_code)
            response.stream = SyncStream(response.stream, attempt)
            return response

    class AsyncPolicyTransport(lib.AsyncHTTPTransport):  # type: ignore[name-defined]
        async def handle_async_request(self, request: Any) -> Any:
            attempt = _Attempt(request, _before_attempt(request))
            with guarded(attempt, connecting=True):
                response = await super().handle_async_request(request)
            _after_attempt(attempt.budget, status=response.status_code)
            _observe(response, attempt.started)
            response.stream = AsyncStream(response.stream, attempt)
            return response

    return AsyncPolicyTransport() if asynchronous else PolicyTransport()


def http_client(*, asynchronous: bool) -> Any:
    """The SDK's default HTTP client (its redirects and headers), on the policy transport."""
    transport = policy_transport(http_library(), asynchronous=asynchronous)
    if asynchronous:
        return openai.DefaultAsyncHttpxClient(transport=transport)
    return openai.DefaultHttpxClient(transport=transport)
