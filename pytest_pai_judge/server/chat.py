"""The chat-completions pipeline: validate, check context, apply faults and latency, ask the engine, shape.

One :class:`ChatService` serves both the online endpoint and batch lines (through
:meth:`ChatService.complete`), so a batch line behaves exactly like the same online request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..protocol import ChatCall, GenerationParams, ProtocolError
from .bodies import load_json, parse_chat, read_body
from .config import ServerConfig
from .engines import EngineCompletion, EngineError, EngineReply, JudgeEngine
from .errors import context_length_exceeded, error_envelope, green_net_filter, model_service_failed, rate_limited
from .faults import RETRY_AFTER_MS, RETRY_HEADERS, match_fault, unreadable_reply
from .passthrough import StreamPump, passthrough_events
from .responses import (
    Choice,
    Completion,
    SafeJSONResponse,
    completion_body,
    error_response,
    new_request_id,
    now,
    sse_events,
)
from .tokens import count_tokens, truncate_tokens

logger = logging.getLogger("pytest_pai_judge.server")
_T = TypeVar("_T")

def parse_body_bytes(raw: bytes, models: dict[str, int] | None = None) -> ChatCall:
    """:func:`.bodies.parse_chat` for the raw HTTP body; JSON that does not load (or nests too deep) is 402."""
    return parse_chat(load_json(raw), models)


def trim_logprobs(logprobs: dict[str, Any] | None, length: int) -> dict[str, Any] | None:
    """``logprobs`` without the token entries that start at or after character ``length`` (text cut there)."""
    entries = logprobs.get("content") if logprobs else None
    if not logprobs or not isinstance(entries, list):
        return logprobs
    kept, start = [], 0
    for entry in entries:
        if start >= length:
            break
        kept.append(entry)
        token = entry.get("token") if isinstance(entry, dict) else None
        start += len(token) if isinstance(token, str) else 0
    return {**logprobs, "content": kept}


def finish(reply: str | EngineReply, params: GenerationParams, *, by_model: bool = False) -> Choice:
    """Apply ``stop`` (cut before the first stop string) and ``max_tokens`` (finish_reason "length").

    ``by_model``: a model that counted its own tokens already applied both (they were forwarded to it);
    cutting again by the server's estimate would shorten a reply the model finished within its limit.
    """
    if isinstance(reply, EngineReply):
        text, reason, logprobs = reply.text, reply.finish_reason, reply.logprobs
    else:
        text, reason, logprobs = reply, "stop", None
    if by_model:
        return Choice(text, reason, logprobs)
    cuts = [text.find(s) for s in params.stop if s and s in text]
    if cuts:
        return Choice(text[:min(cuts)], "stop", trim_logprobs(logprobs, min(cuts)))
    if count_tokens(text) > params.max_tokens:
        cut = truncate_tokens(text, params.max_tokens)
        return Choice(cut, "length", trim_logprobs(logprobs, len(cut)))
    return Choice(text, reason, logprobs)


ENGINE_THREADS = 1
"""Worker threads for CPU work (prompts, token counts, blocking engines' replies). One, because that work
holds the GIL: more threads do not judge faster, they make the event loop wait longer for its turn
(16 x n=128 lexical requests: 4 threads, ``GET /v1/models`` median 17 ms, slowest 204 ms; 1 thread,
3 ms and 82 ms; the same 6 s for the heavy requests either way)."""


class ChatService:
    """Judges chat-completions requests; holds no per-request state.

    CPU work runs on a worker thread, not on the event loop: building the prompt and counting its
    tokens, and the replies of a ``blocking`` engine (the lexical one). Before, 16 concurrent
    ``n=128`` requests kept ``GET /v1/models`` waiting 12.6 s; now it answers in milliseconds
    (``benchmarks/server_responsiveness.py``). A request cancelled while waiting (a cancelled batch
    line) drops its queued replies.
    """

    def __init__(self, config: ServerConfig, engine: JudgeEngine, stats: Counter[str],
                 shutdown: asyncio.Event) -> None:
        self.config = config
        self.engine = engine
        self.stats = stats
        self.shutdown = shutdown
        self._worker: ThreadPoolExecutor | None = None
        self.failed_once: set[str] = set()
        """Requests a ``500once`` fault has already failed (by their judge content)."""

    def close(self) -> None:
        """Stop the worker thread (at shutdown); replies still queued are dropped. A restart makes a new one."""
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)
            self._worker = None

    def in_worker(self, fn: Callable[[], _T]) -> Awaitable[_T]:
        """``fn()`` on the worker thread, awaitable from the event loop."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=ENGINE_THREADS, thread_name_prefix="pai-judge-engine")
        return asyncio.get_running_loop().run_in_executor(self._worker, fn)

    async def complete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Judge one batch line's ``body`` like the online endpoint (never streaming).

        Returns ``(status_code, json)``: a ``chat.completion`` object, or an ``{"error": {...}}`` envelope.
        """
        request_id = new_request_id()
        try:
            call = parse_chat(body, self.config.models)
            completion = await self.judge(call, request_id, stream=False)
        except ProtocolError as err:
            return err.status, error_envelope(err)
        return 200, completion_body(completion, self.config.status_dialect)

    async def endpoint(self, request: Request) -> Response:
        """``POST /v1/chat/completions``."""
        self.stats["chat_completions"] += 1
        request_id = new_request_id()
        try:
            raw = await read_body(request)
            call = parse_body_bytes(raw, self.config.models)
            events = None
            if call.params.stream:
                events = await self.unless_client_leaves(request, self.open_stream(call, request_id, request),
                                                         request_id)
            if events is not None:
                return StreamingResponse(events, media_type="text/event-stream",
                                         headers={"x-request-id": request_id, "cache-control": "no-cache"})
            judging = self.judge(call, request_id, stream=call.params.stream)
            completion = await self.unless_client_leaves(request, judging, request_id)
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except ProtocolError as err:
            headers = dict(RETRY_HEADERS) if err.status == 429 else {}
            headers["x-request-id"] = request_id
            return error_response(err, headers)
        headers = {"x-request-id": request_id}
        if call.params.stream:
            headers["cache-control"] = "no-cache"
            return StreamingResponse(sse_events(completion, self.config.status_dialect, call.params.include_usage),
                                     media_type="text/event-stream", headers=headers)
        return SafeJSONResponse(completion_body(completion, self.config.status_dialect), headers=headers)

    async def unless_client_leaves(self, request: Request, work: Coroutine[Any, Any, _T], request_id: str) -> _T:
        """Run ``work`` as a task, cancelled the moment the client disconnects (then ClientGone is raised).

        Why: a client that timed out or was killed no longer wants the answer, yet its judgement would
        keep its place in the upstream queue, or keep a model generating. Cancelling it drops a queued
        upstream call and closes a running one's connection. The body has been read, so ``receive()``
        has nothing left to give but ``http.disconnect``.
        """
        task = asyncio.ensure_future(work)
        watch = asyncio.ensure_future(_disconnected(request))
        gone = False
        try:
            await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
            gone = not task.done()
        finally:  # also when this handler itself is cancelled (server shutdown)
            watch.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if gone:
            self.stats["client_disconnects"] += 1
            logger.info("client of request %s disconnected: its judgement was cancelled", request_id)
            raise ClientGone(request_id)
        return task.result()

    async def prompt_tokens(self, call: ChatCall) -> int:
        """The prompt's tokens: the engine's model's own count where it gives one, else the server's estimate;
        a prompt too long for the served context is refused (400 ContextLengthExceeded)."""
        try:
            counted = await self.engine.count_prompt_tokens(call)
        except Exception:  # a count is a nicety: never fail a judgement for want of one
            logger.warning("engine %s could not count the prompt's tokens; using the estimate", self.engine.name,
                           exc_info=True)
            counted = None
        if counted is None:
            counted = await self.in_worker(lambda: sum(count_tokens(m["content"])
                                                       for m in self.engine.prompt_messages(call)))
        context = self.config.models[call.model]
        if counted + call.params.max_tokens > context:
            raise context_length_exceeded(context, counted, call.params.max_tokens)
        return counted

    async def open_stream(self, call: ChatCall, request_id: str, request: Request | None = None
                          ) -> AsyncIterator[bytes] | None:
        """The SSE events of an engine that streams (:meth:`JudgeEngine.stream`), its first delta already in;
        None: the engine does not stream, or a fault applies (faults are the buffered path's)."""
        if type(self.engine).stream is JudgeEngine.stream or match_fault(self.config.faults, call) is not None:
            return None
        stage = "Request_judge_model_with_stream"
        prompt_tokens = await self.prompt_tokens(call)
        deltas = self.engine.stream(call)
        if deltas is None:
            return None
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)
        self.stats["judgements"] += call.params.n
        pump = StreamPump(deltas)
        try:
            first = await self._engine_call(pump.next(), request_id, stage, "first chunk")
        except BaseException:
            await pump.aclose()
            raise
        if request is not None:  # a client that leaves mid-stream closes the upstream stream at once
            pump.stop_when(_disconnected(request))
        head = Completion(request_id, call.model, [], prompt_tokens, now())
        return passthrough_events(pump, first, head, n=call.params.n, dialect=self.config.status_dialect,
                                  include_usage=call.params.include_usage, stage=stage)

    async def judge(self, call: ChatCall, request_id: str, *, stream: bool) -> Completion:
        """Everything between a validated request and its finished choices; raises ProtocolError."""
        stage = "Request_judge_model_with_stream" if stream else "Request_judge_model"
        prompt_tokens = await self.prompt_tokens(call)
        fault = match_fault(self.config.faults, call)
        if fault is not None:
            self.stats[f"fault_{fault.kind}"] += 1
            if fault.kind == "429":
                raise rate_limited(RETRY_AFTER_MS)
            if fault.kind == "timeout":
                try:
                    await asyncio.wait_for(self.shutdown.wait(), self.config.fault_timeout_s)
                except asyncio.TimeoutError:
                    pass
                raise model_service_failed(stage, request_id, "judge model timed out")
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)
        if fault is not None and fault.kind == "500":
            raise model_service_failed(stage, request_id, f"injected fault (pattern {fault.pattern!r})")
        if fault is not None and fault.kind == "500once":
            seen = json.dumps([call.kind, call.fields, call.messages], sort_keys=True, default=str)
            if seen not in self.failed_once:
                self.failed_once.add(seen)
                raise model_service_failed(stage, request_id, f"injected fault, once (pattern {fault.pattern!r})")
        if fault is not None and fault.kind == "greennet":
            raise green_net_filter(f"injected fault (pattern {fault.pattern!r})")
        model_usage: dict[str, int] | None = None
        if fault is not None and fault.kind == "unreadable":
            replies: list[str | EngineReply] = [unreadable_reply(call)] * call.params.n
        else:
            whole = await self._engine_call(self.engine.complete(call), request_id, stage, "all choices")
            if whole is None:
                replies = list(await asyncio.gather(*(self._reply(call, i, request_id, stage)
                                                      for i in range(call.params.n))))
            else:
                replies, model_usage = self._check_whole(whole, call.params.n, request_id, stage)
        choices = [finish(r, call.params, by_model=model_usage is not None) for r in replies]
        return Completion(request_id, call.model, choices, prompt_tokens, now(), model_usage)

    def _check_whole(self, whole: Any, n: int, request_id: str,
                     stage: str) -> tuple[list[str | EngineReply], dict[str, int] | None]:
        """The replies and usage of :meth:`JudgeEngine.complete`, which must be all ``n`` choices."""
        if not isinstance(whole, EngineCompletion) or len(whole.replies) != n:
            got = len(whole.replies) if isinstance(whole, EngineCompletion) else type(whole).__name__
            raise model_service_failed(stage, request_id, f"engine returned {got} of {n} choices")
        self.stats["judgements"] += n
        for reply in whole.replies:
            _check_text(reply, request_id, stage)
        usage = whole.usage
        if usage is not None and not all(isinstance(usage.get(k), int)
                                         for k in ("prompt_tokens", "completion_tokens", "total_tokens")):
            usage = None
        return list(whole.replies), usage

    async def _reply(self, call: ChatCall, choice: int, request_id: str, stage: str) -> str | EngineReply:
        self.stats["judgements"] += 1
        if self.engine.blocking:
            pending = self.in_worker(partial(self.engine.reply_blocking, call, choice=choice))
        else:
            pending = self.engine.reply(call, choice=choice)
        text = await self._engine_call(pending, request_id, stage, f"choice {choice}")
        return _check_text(text, request_id, stage)

    async def _engine_call(self, pending: Awaitable[_T], request_id: str, stage: str, what: str) -> _T:
        """Await an engine method; its failures become the spec's 500 ModelServiceFailed."""
        started = time.perf_counter()
        try:
            result = await pending
        except ProtocolError:
            raise
        except EngineError as exc:
            logger.warning("engine %s failed (request %s): %s", self.engine.name, request_id, exc)
            raise model_service_failed(stage, request_id, str(exc)) from None
        except Exception as exc:  # an engine bug must still be a 500 envelope, not a traceback
            logger.exception("engine %s crashed (request %s)", self.engine.name, request_id)
            raise model_service_failed(stage, request_id, type(exc).__name__) from None
        logger.debug("judgement %s %s in %.3f s", request_id, what, time.perf_counter() - started)
        return result


CLIENT_CLOSED_REQUEST = 499
"""The status of a request whose client left before its answer (nginx's; nobody is there to read it)."""


class ClientGone(Exception):
    """The client disconnected before its answer was ready; its work was cancelled."""


async def _disconnected(request: Request) -> None:
    """Return once the client has disconnected (the request body must have been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _check_text(reply: Any, request_id: str, stage: str) -> str | EngineReply:
    if not isinstance(reply, (str, EngineReply)) or not isinstance(getattr(reply, "text", reply), str):
        raise model_service_failed(stage, request_id, "engine returned no text")
    return reply
