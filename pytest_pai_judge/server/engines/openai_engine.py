"""The ``openai`` engine: judge with any OpenAI-compatible model, through PAI's own prompt templates.

Judge requests are turned into the spec's single / pairwise prompt (scene auto-divided by
:mod:`..scenes` when empty, defaults for score_desc and steps, then the reply format the verdict
parser reads), custom templates are passed through, and the generation parameters are forwarded
(``n`` in one request; ``logprobs``, ``top_logprobs``, ``logit_bias`` and ``user`` too). The
upstream's choices, logprobs and ``usage`` come back as they are (the local token estimate only
when the upstream reports no usage). The upstream key is read from the environment variable
named by ``config.upstream_api_key_env`` ("EMPTY" when unset) and never stored or logged. An
upstream failure becomes the spec's 500 ``Request_judge_model, load error`` reply. ``stream=true``
is forwarded and the upstream's chunks are passed on as they arrive (:meth:`OpenAIEngine.stream`);
prompt tokens are counted by the upstream's tokenizer where it has one (:mod:`..upstream_info`).

At most ``config.upstream_concurrency`` upstream calls are in flight; the rest wait in the server's
FIFO queue (:class:`..upstream.UpstreamQueue`). A call cancelled because its client left is dropped
from the queue, or, while running, has its upstream connection closed, which is what makes vLLM and
llama.cpp stop generating. Resends follow :func:`..upstream.is_retryable`: never a timed-out call
unless ``config.upstream_retry_timeouts``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import Any, Literal

import openai
from openai import AsyncStream
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.chat_completion import Choice

from ...protocol import ChatCall, invalid_parameter
from .. import upstream, upstream_info
from ..config import ServerConfig
from .base import EngineCompletion, EngineError, EngineReply, JudgeEngine, StreamDelta

log = logging.getLogger("pytest_pai_judge.server.upstream")


class OpenAIEngine(JudgeEngine):
    """Forwards the filled judge prompt to ``config.upstream_model`` at ``config.upstream_base_url``."""

    name = "openai"

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        if not config.upstream_base_url or not config.upstream_model:
            raise ValueError("the openai engine needs an upstream base URL and model "
                             "(--upstream-base-url, --upstream-model)")
        if config.upstream_concurrency < 1:
            raise ValueError(f"upstream concurrency must be >= 1, got {config.upstream_concurrency}")
        self._client: openai.AsyncOpenAI | None = None
        self._queue: upstream.UpstreamQueue | None = None
        self._counter: upstream_info.TokenCounter | None = None

    async def startup(self) -> None:
        """Create the client and the queue inside the server's event loop (both belong to that loop).

        The SDK's own retries are off (``max_retries=0``): it would resend timed-out calls too; resends
        are :meth:`_create`'s. Its ``timeout`` is the per-call ``upstream_timeout_s``.
        """
        self._client = openai.AsyncOpenAI(
            base_url=self.config.upstream_base_url,
            api_key=os.environ.get(self.config.upstream_api_key_env) or "EMPTY",
            timeout=self.config.upstream_timeout_s,
            max_retries=0,
        )
        self._queue = upstream.UpstreamQueue(self.config.upstream_concurrency, self.stats,
                                             adaptive=self.config.upstream_adapt)
        if self.config.context_limit_auto:
            context = await upstream_info.context_length(self.config.upstream_base_url or "",
                                                         self.config.upstream_model or "",
                                                         api_key_env=self.config.upstream_api_key_env)
            self.config.models.update(dict.fromkeys(self.config.models, context))
            self.config.context_limit_auto = False  # resolved: a restart of the app keeps the number

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._counter is not None:
            await self._counter.aclose()
            self._counter = None

    def request_kwargs(self, call: ChatCall, n: int | None = None) -> dict[str, Any]:
        """The upstream request: the judge prompt plus every generation parameter that carries over.

        ``n`` (default ``call.params.n``) choices are asked for in one request, so the upstream's
        own sampling, usage and logprobs describe the reply the caller gets.
        """
        p = call.params
        n = p.n if n is None else n
        kwargs: dict[str, Any] = {"model": self.config.upstream_model, "messages": self.prompt_messages(call),
                                  "temperature": p.temperature, "max_tokens": p.max_tokens}
        if n != 1:
            kwargs["n"] = n
        if p.seed is not None:
            kwargs["seed"] = p.seed
        if p.stop:
            kwargs["stop"] = p.stop
        if p.top_p is not None:
            kwargs["top_p"] = p.top_p
        if p.frequency_penalty:
            kwargs["frequency_penalty"] = p.frequency_penalty
        if p.presence_penalty:
            kwargs["presence_penalty"] = p.presence_penalty
        if p.response_format == "json_object":
            kwargs["response_format"] = {"type": "json_object"}
        if p.logprobs:
            kwargs["logprobs"] = True
            if p.top_logprobs is not None:
                kwargs["top_logprobs"] = p.top_logprobs
        if p.logit_bias:
            kwargs["logit_bias"] = dict(p.logit_bias)
        if p.user is not None:
            kwargs["user"] = p.user
        return kwargs

    async def complete(self, call: ChatCall) -> EngineCompletion:
        """All ``n`` choices from one upstream request (more only if the upstream returns fewer), with its usage."""
        replies: list[str | EngineReply] = []
        usage: dict[str, int] | None = dict(NO_USAGE)
        while len(replies) < call.params.n:
            missing = call.params.n - len(replies)
            completion = await self._create(self.request_kwargs(call, missing))
            choices = sorted(completion.choices, key=lambda c: c.index or 0)[:missing]
            if not choices:
                raise EngineError("upstream model returned no choices")
            replies += [_reply_of(c) for c in choices]
            usage = add_usage(usage, completion.usage)
        return EngineCompletion(replies, usage)

    async def reply(self, call: ChatCall, *, choice: int) -> EngineReply:
        """One choice (the server asks :meth:`complete` instead; kept for callers of the engine interface)."""
        completion = await self._create(self.request_kwargs(call, 1))
        if not completion.choices:
            raise EngineError("upstream model returned no choices")
        return _reply_of(completion.choices[0])

    async def _create(self, kwargs: dict[str, Any]) -> ChatCompletion:
        """One upstream call: wait for a slot, send, resend a retryable failure (holding the slot).

        With adaptive slots a 429 gives the slot back and the call queues again (behind the upstream's
        retry-after and the halved slots), for up to ``upstream_timeout_s`` of 429s: resending from a held
        slot would only compete with every other held slot for the upstream's next free request."""
        client, queue = await self._ready()
        throttled_since: float | None = None
        while True:
            async with queue.slot():
                try:
                    return await self._attempts(client, kwargs, queue)
                except upstream.Requeue as again:
                    now = queue.control.clock()
                    throttled_since = now if throttled_since is None else throttled_since
                    if now - throttled_since > self.config.upstream_timeout_s:
                        raise self._failure(again.error) from None

    async def _ready(self) -> tuple[openai.AsyncOpenAI, upstream.UpstreamQueue]:
        if self._client is None or self._queue is None:
            await self.startup()
        assert self._client is not None and self._queue is not None
        return self._client, self._queue

    async def _attempts(self, client: openai.AsyncOpenAI, kwargs: dict[str, Any], queue: upstream.UpstreamQueue
                        ) -> Any:
        """Send ``kwargs`` upstream, resending a retryable failure (the caller holds a slot); the queue
        hears of each answer and 429, so its slots follow a rate-limited upstream."""
        retries = self.config.upstream_max_retries
        attempt = 0
        while True:
            started = queue.control.clock()
            try:
                answer = await self._send(client, kwargs)
                queue.answered(queue.control.clock() - started)
                return answer
            except openai.APIError as exc:
                if isinstance(exc, openai.APIStatusError) and exc.status_code == 429:
                    queue.rate_limited(upstream.retry_after_s(exc), started)
                    if queue.control.adaptive and not kwargs.get("stream"):
                        raise upstream.Requeue(exc) from None
                delay = (upstream.retry_delay_s(exc, attempt) if attempt < retries and upstream.is_retryable(
                    exc, retry_timeouts=self.config.upstream_retry_timeouts) else None)
                if delay is None:
                    raise self._failure(exc) from None
                log.info("upstream call failed (%s); resending in %.2f s (%d of %d)",
                         _what_failed(exc), delay, attempt + 1, retries)
                await asyncio.sleep(delay)
                attempt += 1
                self.stats[upstream.RETRIES] += 1

    def stream(self, call: ChatCall) -> AsyncIterator[StreamDelta]:
        """The upstream's own stream, chunk by chunk (``stream=true`` forwarded; usage when the caller asked)."""
        return self._stream(call)

    async def _stream(self, call: ChatCall) -> AsyncIterator[StreamDelta]:
        kwargs = {**self.request_kwargs(call), "stream": True}
        if call.params.include_usage:
            kwargs["stream_options"] = {"include_usage": True}
        client, queue = await self._ready()
        async with queue.slot():  # held until the stream ends: the model is busy generating it
            chunks: AsyncStream[ChatCompletionChunk] = await self._attempts(client, kwargs, queue)
            try:
                async for chunk in chunks:
                    for choice in chunk.choices:
                        logprobs = choice.logprobs.model_dump(mode="json") if choice.logprobs is not None else None
                        finish: Literal["stop", "length"] | None = None if choice.finish_reason is None else (
                            "length" if choice.finish_reason == "length" else "stop")
                        yield StreamDelta(choice.index or 0, choice.delta.content or "", finish, logprobs)
                    if chunk.usage is not None:
                        yield StreamDelta(usage=add_usage(dict(NO_USAGE), chunk.usage))
            except openai.APIError as exc:
                raise self._failure(exc) from None
            finally:
                await chunks.close()

    async def count_prompt_tokens(self, call: ChatCall) -> int | None:
        """The prompt's tokens by the upstream's own tokenizer, where it offers one (:mod:`..upstream_info`)."""
        if not self.config.upstream_token_count:
            return None
        if self._counter is None:
            self._counter = upstream_info.TokenCounter(self.config.upstream_base_url or "", self.config.upstream_model
                                                       or "", api_key_env=self.config.upstream_api_key_env)
        return await self._counter.count(self.prompt_messages(call))

    async def _send(self, client: openai.AsyncOpenAI, kwargs: dict[str, Any]) -> ChatCompletion:
        """One HTTP request upstream, counted; cancelling it (the client left) closes its connection."""
        self.stats[upstream.STARTED] += 1
        try:
            completion = await client.chat.completions.create(**kwargs)
        except asyncio.CancelledError:
            self.stats[upstream.CANCELLED] += 1
            log.info("running upstream call cancelled (its client left): upstream connection closed")
            raise
        except openai.APIError as exc:
            self.stats[upstream.FINISHED] += 1
            self.stats[upstream.FAILED] += 1
            if isinstance(exc, openai.APITimeoutError):
                self.stats[upstream.TIMEOUTS] += 1
            raise
        self.stats[upstream.FINISHED] += 1
        return completion

    def _failure(self, exc: openai.APIError) -> Exception:
        """The error the server answers for a failed upstream call (a ProtocolError or an EngineError)."""
        if isinstance(exc, openai.BadRequestError):  # a parameter the upstream refuses: the caller's to fix
            return invalid_parameter(str(getattr(exc, "param", None) or "request"),
                                     f"the upstream model refused it: {_short(exc.message)}")
        if isinstance(exc, openai.APITimeoutError):
            resent = "" if self.config.upstream_retry_timeouts else " (not resent: a slow model would be asked twice)"
            return EngineError(f"upstream model timed out after {self.config.upstream_timeout_s:g} s{resent}")
        if isinstance(exc, openai.APIStatusError):
            return EngineError(f"upstream model answered {exc.status_code}: {_short(exc.message)}")
        return EngineError(f"upstream model unreachable: {type(exc).__name__}: {_short(exc.message)}")


NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def _what_failed(exc: openai.APIError) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"status {exc.status_code}"
    return type(exc).__name__


def _reply_of(choice: Choice) -> EngineReply:
    """An upstream choice as the engine's reply: text, why it ended, and its logprobs as sent."""
    if choice.message.content is None:
        raise EngineError("upstream model returned no content")
    logprobs = choice.logprobs.model_dump(mode="json") if choice.logprobs is not None else None
    return EngineReply(choice.message.content, "length" if choice.finish_reason == "length" else "stop", logprobs)


def add_usage(total: dict[str, int] | None, usage: CompletionUsage | None) -> dict[str, int] | None:
    """Upstream token counts added up over the requests of one judgement; None once any request had none."""
    if total is None or usage is None:
        return None
    counts = (usage.prompt_tokens, usage.completion_tokens)
    if not all(isinstance(c, int) for c in counts):
        return None
    return {"prompt_tokens": total["prompt_tokens"] + usage.prompt_tokens,
            "completion_tokens": total["completion_tokens"] + usage.completion_tokens,
            "total_tokens": total["total_tokens"] + (usage.total_tokens if isinstance(usage.total_tokens, int)
                                                     else usage.prompt_tokens + usage.completion_tokens)}


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
