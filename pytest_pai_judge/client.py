"""The judge client: one ``openai`` SDK client and connection pool per session.

The SDK does the HTTP work (retries with backoff on 408/409/429/5xx and connection errors;
``retry-after`` honoured), on a transport that adds what it lacks (:mod:`.call_policy`: no resend
after a timeout, a total budget per call); this module turns its exceptions into the
:mod:`pytest_pai_judge.errors` hierarchy and the completion into a :class:`JudgeReply`.
``openai`` is imported on first use, so a pytest run that judges nothing never pays for it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import errors, protocol
from .interning import shared
from .request import JudgeRequest

if TYPE_CHECKING:  # pragma: no cover
    import openai

    from .batch_calls import BatchAPI

TOKEN_ENV = "JUDGE_MODEL_TOKEN"
BASE_URL_ENV = "JUDGE_MODEL_BASE_URL"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 3
TOTAL_TIMEOUTS = 2
"""The default total budget of one call, in per-attempt timeouts (``--judge-total-timeout``)."""
CHAT_PATH = "/chat/completions"
"""Sent with the SDK's documented ``client.post`` (custom requests): same retries, timeouts and error
classes as ``chat.completions.create``, without its per-call parameter transformation (~1 ms), and
the judge ``content`` objects pass through untouched."""


@dataclass(frozen=True, slots=True)
class JudgeReply:
    """What the judge said, before parsing: kept raw so the cache can re-parse it later."""

    raw: str
    model: str
    usage: dict[str, int] | None
    latency_s: float
    more: tuple[str, ...] = ()
    """The texts of choices 1, 2, ... of a call that asked for ``n`` > 1 (samples of a noisy judge)."""
    finish_reasons: tuple[str | None, ...] = ()
    """Each choice's ``finish_reason`` ("length": cut at ``max_tokens``); empty when not known (a cached reply)."""

    def choice(self, index: int) -> JudgeReply:
        """Choice ``index`` as a reply of its own; the call's usage goes with choice 0 only (it is paid once)."""
        texts = self.texts
        return JudgeReply(texts[index], self.model, self.usage if index == 0 else None, self.latency_s,
                          finish_reasons=self.finish_reasons[index:index + 1])

    def cut(self, choice: int = 0) -> bool:
        """Whether choice ``choice`` stopped at ``max_tokens`` rather than at its end."""
        return choice < len(self.finish_reasons) and self.finish_reasons[choice] == "length"

    @property
    def texts(self) -> tuple[str, ...]:
        """Every choice's text, in order."""
        return (self.raw, *self.more)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (xdist workers hand their replies to the controller)."""
        data: dict[str, Any] = {"raw": self.raw, "model": self.model, "usage": self.usage,
                                "latency_s": self.latency_s}
        if self.more:
            data["more"] = list(self.more)
        if self.finish_reasons:
            data["finish_reasons"] = list(self.finish_reasons)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JudgeReply:
        return cls(data["raw"], data.get("model") or "", data.get("usage"), float(data.get("latency_s") or 0),
                   tuple(data.get("more") or ()), tuple(data.get("finish_reasons") or ()))


def plural_attempts(n: int) -> str:
    return f"{n} attempt" + ("" if n == 1 else "s")


def clean_token(token: str | None) -> str | None:
    """Accept a token pasted with the vendor sample's ``Authorization: Bearer`` prefix."""
    if token is None:
        return None
    token = token.strip()
    for prefix in ("Authorization:", "Bearer "):
        if token.startswith(prefix):
            token = token[len(prefix):].strip()
    return token or None


def reply_from_completion(body: dict[str, Any], latency_s: float = 0.0) -> JudgeReply:
    """Read a chat.completion JSON (an online reply or a batch output line's body)."""
    choices = body.get("choices") or []
    if not choices:
        raise errors.ModelServiceFailed("the judge returned no choices", status=200)
    ordered = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
    texts = [(c.get("message") or {}).get("content") if isinstance(c, dict) else None for c in ordered]
    reasons = tuple(c.get("finish_reason") if isinstance(c, dict) else None for c in ordered)
    if not isinstance(texts[0], str):
        raise errors.ModelServiceFailed("the judge returned no text", status=200)
    usage = body.get("usage")
    if usage is not None:
        usage = {k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    more = tuple(t if isinstance(t, str) else "" for t in texts[1:])  # a choice without text is unreadable
    return JudgeReply(texts[0], shared(str(body.get("model") or "")), usage, latency_s, more, shared(reasons))


def _as_dict(completion: Any) -> dict[str, Any]:
    if isinstance(completion, dict):
        return completion
    raise errors.ModelServiceFailed(f"the judge's reply is not a JSON object: {str(completion)[:200]!r}", status=200)


def translate_exception(exc: BaseException, client: JudgeClient | None = None) -> errors.JudgeError:
    """Map an ``openai`` SDK exception to the JudgeError subclass of its PAI code."""
    if isinstance(exc, errors.JudgeError):
        return exc
    import openai

    from .call_policy import BudgetSpent, TimeoutNotResent

    where = f" at {client.base_url} (timeout {client.timeout:g}s, {client.max_retries} retries)" if client else ""
    at = f" at {client.base_url}" if client else ""
    if isinstance(exc, TimeoutNotResent):
        return errors.JudgeTimeout(f"the judge did not answer within {exc.waited_s:.3g}s{at} (attempt "
                                   f"{exc.attempt}); not resent, since the judge may still be working on it",
                                   hint="raise --judge-timeout, or check the judge service's load")
    if isinstance(exc, BudgetSpent):
        spent = exc.budget
        kind = errors.JudgeConnectionError if spent.unreachable else errors.JudgeTimeout
        last = f"; the last one: {spent.last}" if spent.last else ""
        return kind(f"the judge call used up its total budget of {spent.total_s:g}s{at} over "
                    f"{plural_attempts(spent.attempts)}{last}",
                    hint="raise --judge-total-timeout, or check the judge service's load")
    if isinstance(exc, openai.APITimeoutError):
        return errors.JudgeTimeout(f"the judge did not answer in time{where}",
                                   hint="raise --judge-timeout, or check the judge service's load")
    if isinstance(exc, openai.APIConnectionError):
        return errors.JudgeConnectionError(f"cannot reach the judge{where}: {exc.__cause__ or exc}",
                                           hint="check --judge-base-url / JUDGE_MODEL_BASE_URL and the network")
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
        message = err.get("message") or exc.message
        return errors.from_code(exc.status_code, err.get("code"), str(message), err.get("param"))
    return errors.JudgeError(f"the judge call failed: {type(exc).__name__}: {exc}")


class JudgeClient:
    """Sends judge requests to PAI (or any server speaking its API). Thread-safe; create one per session."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S,
                 max_retries: int = DEFAULT_MAX_RETRIES, total_timeout: float | None = None,
                 models: dict[str, int] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = clean_token(token)
        self.timeout = timeout
        self.max_retries = max_retries
        self.total_timeout = total_timeout if total_timeout is not None else TOTAL_TIMEOUTS * timeout
        """Seconds one judge call may take across all its attempts (see :mod:`pytest_pai_judge.call_policy`)."""
        self.models = models
        self._sync: openai.OpenAI | None = None
        self._async: dict[int, openai.AsyncOpenAI] = {}
        self._batch_api: BatchAPI | None = None

    def __repr__(self) -> str:  # never show the token
        return f"JudgeClient(base_url={self.base_url!r}, timeout={self.timeout})"

    # ------------------------------------------------------------------ SDK clients

    def _kwargs(self) -> dict[str, Any]:
        return {"api_key": self._token or "no-token", "base_url": self.base_url, "timeout": self.timeout,
                "max_retries": self.max_retries}

    @property
    def sdk(self) -> openai.OpenAI:
        if self._sync is None:
            import openai

            from .call_policy import http_client

            self._sync = openai.OpenAI(**self._kwargs(), http_client=http_client(asynchronous=False))
        return self._sync

    @property
    def batch_api(self) -> BatchAPI:
        """Files and batches calls (batch mode), through the SDK, answers as dicts (see :mod:`.batch_calls`)."""
        if self._batch_api is None:
            from .batch_calls import BatchAPI

            self._batch_api = BatchAPI(lambda: self.sdk)
        return self._batch_api

    def async_sdk(self) -> openai.AsyncOpenAI:
        """One AsyncOpenAI per event loop (an httpx pool must not cross loops)."""
        import openai

        from .call_policy import http_client

        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._async:
            self._async[loop_id] = openai.AsyncOpenAI(**self._kwargs(), http_client=http_client(asynchronous=True))
        return self._async[loop_id]

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None
        if self._batch_api is not None:
            self._batch_api.close()
            self._batch_api = None
        self._async.clear()

    # ------------------------------------------------------------------ calls

    def check(self, request: JudgeRequest) -> None:
        """Fail fast, before any network, with the code the server would give."""
        __tracebackhide__ = True
        check_request(request, self.models)

    def complete(self, request: JudgeRequest) -> JudgeReply:
        """Check the request, then send it."""
        __tracebackhide__ = True
        self.check(request)
        return self.send(request)

    def send(self, request: JudgeRequest) -> JudgeReply:
        """Send a request already checked with :func:`check_request` (the plugin checks before its cache lookup)."""
        __tracebackhide__ = True
        from .call_policy import CURRENT, CallBudget

        started = time.perf_counter()
        budget = CURRENT.set(CallBudget(self.total_timeout))
        try:
            completion = self.sdk.post(CHAT_PATH, body=request.body(), cast_to=object)
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes a JudgeError
            raise translate_exception(exc, self) from None
        finally:
            CURRENT.reset(budget)
        return reply_from_completion(_as_dict(completion), time.perf_counter() - started)

    async def acomplete(self, request: JudgeRequest) -> JudgeReply:
        """Check the request, then send it on the running event loop."""
        self.check(request)
        return await self.asend(request)

    async def asend(self, request: JudgeRequest) -> JudgeReply:
        """:meth:`send` on the running event loop (deferred mode's concurrent calls)."""
        from .call_policy import CURRENT, CallBudget

        started = time.perf_counter()
        budget = CURRENT.set(CallBudget(self.total_timeout))
        try:
            completion = await self.async_sdk().post(CHAT_PATH, body=request.body(), cast_to=object)
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes a JudgeError
            raise translate_exception(exc, self) from None
        finally:
            CURRENT.reset(budget)
        return reply_from_completion(_as_dict(completion), time.perf_counter() - started)


def check_request(request: JudgeRequest, models: dict[str, int] | None) -> None:
    """Refuse a request the server would refuse, with its code; ``models``: the server's model list, if known."""
    __tracebackhide__ = True
    try:
        request.validate(models)
    except protocol.ProtocolError as exc:
        raise errors.from_code(exc.status, exc.code, exc.message, exc.param, local=True) from None
