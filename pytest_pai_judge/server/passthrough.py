"""``stream=true`` with a streaming engine: the model's chunks go to the client as they arrive.

Why: the buffered stream (:func:`.responses.sse_events`) sends its first chunk only after the whole
reply, so a client watching a slow local model saw nothing for the whole generation. Here the
engine's stream runs in a task of its own (so the upstream connection is read by one task from start
to end) and hands each delta over a queue to the response, which re-labels it as this server's
chunk (its id, model name and dialect). The first delta is awaited before the response starts, so
an upstream that fails at once is still the spec's 500 envelope; a failure later in the stream
arrives as an ``error`` event (the openai SDK raises it), and a client that leaves cancels the task,
which closes the upstream connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from ..protocol import ProtocolError
from .bodies import json_text
from .engines import EngineError, StreamDelta
from .errors import error_envelope, model_service_failed
from .responses import Completion, stream_chunk
from .tokens import count_tokens

_END = object()


class StreamPump:
    """Iterates the engine's deltas in a task of its own; :meth:`next` hands them over in order."""

    def __init__(self, deltas: AsyncIterator[StreamDelta]) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task = asyncio.ensure_future(self._run(deltas))
        self._watch: asyncio.Future[None] | None = None

    def stop_when(self, gone: Awaitable[None]) -> None:
        """Stop reading the engine's stream as soon as ``gone`` returns (the client disconnected): the server
        does not learn it from sending, which an ASGI server may silently drop once the client has left."""
        async def watch() -> None:
            await gone
            self._task.cancel()
            await self._queue.put(_END)

        self._watch = asyncio.ensure_future(watch())

    async def _run(self, deltas: AsyncIterator[StreamDelta]) -> None:
        try:
            async for delta in deltas:
                await self._queue.put(delta)
        except (EngineError, ProtocolError) as exc:  # handed to the reader: an error reply or an error event
            await self._queue.put(exc)
        except Exception as exc:  # noqa: BLE001 - an engine bug still ends the stream with an error, not silence
            await self._queue.put(EngineError(f"stream failed: {type(exc).__name__}"))
        else:
            await self._queue.put(_END)

    async def next(self) -> StreamDelta | None:
        """The next delta; None at the end of the stream. Raises what the engine's stream raised."""
        item = await self._queue.get()
        if isinstance(item, Exception):
            raise item
        return None if item is _END else item

    async def aclose(self) -> None:
        """Stop reading the engine's stream (its upstream connection is closed as the task is cancelled)."""
        for task in (self._task, self._watch):
            if task is not None and not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                if task is not None:
                    await task


async def passthrough_events(pump: StreamPump, first: StreamDelta | None, head: Completion, *, n: int,
                             dialect: str, include_usage: bool, stage: str) -> AsyncIterator[bytes]:
    """The SSE stream: a role chunk per choice, then each delta as it comes, the usage, ``[DONE]``.

    ``head`` carries the id, model and creation time of every chunk (its ``prompt_tokens`` make the
    usage when the model reports none: the estimate of what was streamed).
    """
    texts: dict[int, str] = {}
    usage: dict[str, int] | None = None
    try:
        for index in range(n):
            yield stream_chunk(head, dialect, [{"index": index, "delta": {"role": "assistant", "content": ""},
                                                "finish_reason": None, "logprobs": None}], include_usage=include_usage)
        delta = first
        while delta is not None:
            if delta.usage is not None:
                usage = delta.usage
            elif delta.content or delta.finish_reason or delta.logprobs:
                texts[delta.index] = texts.get(delta.index, "") + delta.content
                yield stream_chunk(head, dialect, [{"index": delta.index,
                                                    "delta": {"content": delta.content} if delta.content else {},
                                                    "finish_reason": delta.finish_reason,
                                                    "logprobs": delta.logprobs}], include_usage=include_usage)
            delta = await pump.next()
        if include_usage:
            if usage is None:
                completion = sum(count_tokens(t) for t in texts.values())
                usage = {"prompt_tokens": head.prompt_tokens, "completion_tokens": completion,
                         "total_tokens": head.prompt_tokens + completion}
            yield stream_chunk(head, dialect, [], usage=usage, include_usage=True)
        yield b"data: [DONE]\n\n"
    except (EngineError, ProtocolError) as exc:
        err = exc if isinstance(exc, ProtocolError) else model_service_failed(stage, head.request_id, str(exc))
        yield stream_error(err)
    finally:
        await pump.aclose()


def stream_error(err: ProtocolError) -> bytes:
    """A failure after the stream began, as the ``error`` event OpenAI's streams send (the SDK raises it)."""
    return b"data: " + json_text(error_envelope(err)).encode() + b"\n\n"
