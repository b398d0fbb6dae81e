"""Wire shapes of the local server: chat completions, stream chunks, model cards and error envelopes.

Kept apart from the request pipeline so the shapes can be checked against the spec's samples in
one place. ``service_tier`` follows the dialect: PAI sends ``""`` (as in the spec's samples, which
the openai SDK's strict validation rejects), the ``openai`` dialect sends ``"default"``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

from ..protocol import ProtocolError
from .bodies import json_text
from .errors import error_envelope
from .tokens import count_tokens

MODEL_CREATED = 1733260000
"""A fixed ``created`` for model cards (the spec's era), so listings are stable."""


def new_request_id() -> str:
    """A request id in the spec's bare-UUID form."""
    return str(uuid.uuid4())


class SafeJSONResponse(JSONResponse):
    """Starlette's JSONResponse, except that a lone surrogate in a string (a spec message quoting a field,
    say) is sent as a ``\\u`` escape rather than failing to encode as UTF-8 (:func:`.bodies.json_text`)."""

    def render(self, content: Any) -> bytes:
        return json_text(content, allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")


def error_response(err: ProtocolError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The OpenAI error envelope with the spec's status; the openai SDK maps it to its exception classes."""
    return SafeJSONResponse(error_envelope(err), status_code=err.status, headers=headers)


def service_tier(dialect: str) -> str:
    return "default" if dialect == "openai" else ""


@dataclass
class Choice:
    content: str
    finish_reason: str
    logprobs: dict[str, Any] | None = None
    """The model's OpenAI ``logprobs`` object for this choice, when the engine's model gave one."""


@dataclass
class Completion:
    """A finished judgement: what both the JSON reply and the SSE stream are built from."""

    request_id: str
    model: str
    choices: list[Choice]
    prompt_tokens: int
    created: int
    model_usage: dict[str, int] | None = None
    """The engine's model's own token counts (e.g. an upstream's ``usage``); None: the local estimate."""

    @property
    def completion_tokens(self) -> int:
        return sum(count_tokens(c.content) for c in self.choices)

    def usage(self) -> dict[str, int]:
        if self.model_usage is not None:
            return dict(self.model_usage)
        completion = self.completion_tokens
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion}


def now() -> int:
    return int(time.time())


def completion_body(c: Completion, dialect: str = "pai") -> dict[str, Any]:
    """A ``chat.completion`` object shaped like the spec's sample responses."""
    return {
        "id": c.request_id,
        "object": "chat.completion",
        "created": c.created,
        "model": c.model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": ch.content, "refusal": "",
                                             "function_call": None, "tool_calls": None},
                     "finish_reason": ch.finish_reason, "logprobs": ch.logprobs} for i, ch in enumerate(c.choices)],
        "usage": c.usage(),
        "system_fingerprint": "",
        "service_tier": service_tier(dialect),
    }


def stream_chunk(c: Completion, dialect: str, choices: list[dict[str, Any]], usage: Any = None,
                 include_usage: bool = False) -> bytes:
    """One ``chat.completion.chunk`` SSE event of ``c`` (its id, model and time) carrying ``choices``."""
    body: dict[str, Any] = {"id": c.request_id, "object": "chat.completion.chunk", "created": c.created,
                            "model": c.model, "system_fingerprint": "", "service_tier": service_tier(dialect),
                            "choices": choices}
    if include_usage:
        body["usage"] = usage
    return b"data: " + json_text(body).encode() + b"\n\n"


def split_deltas(text: str, size: int = 12) -> Iterable[str]:
    """Content deltas of about ``size`` characters, cut after whitespace where possible."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + 1, end + 1)
            if space > start:
                end = space + 1
        yield text[start:end]
        start = end


def delta_logprobs(logprobs: dict[str, Any] | None, pieces: list[str]) -> list[dict[str, Any] | None]:
    """The ``logprobs`` of each content delta: every token entry goes with the delta its text starts in.

    Why: a stream's deltas are cut by characters, not by the model's tokens, yet the concatenated
    chunk logprobs must equal the non-streamed ones (as OpenAI's streams do).
    """
    if not logprobs or not pieces:
        return [None] * len(pieces)
    entries = logprobs.get("content")
    if not isinstance(entries, list):
        return [logprobs] + [None] * (len(pieces) - 1)
    ends, total = [], 0
    for piece in pieces:
        total += len(piece)
        ends.append(total)
    slices: list[list[Any]] = [[] for _ in pieces]
    start, k = 0, 0
    for entry in entries:
        while k < len(pieces) - 1 and start >= ends[k]:
            k += 1
        slices[k].append(entry)
        token = entry.get("token") if isinstance(entry, dict) else None
        start += len(token) if isinstance(token, str) else 0
    return [{**logprobs, "content": part} for part in slices]


async def sse_events(c: Completion, dialect: str = "pai", include_usage: bool = False) -> AsyncIterator[bytes]:
    """The SSE stream of ``chat.completion.chunk`` events: role, content deltas, finish, usage, ``[DONE]``."""
    for i, ch in enumerate(c.choices):
        yield stream_chunk(c, dialect, [{"index": i, "delta": {"role": "assistant", "content": ""},
                                   "finish_reason": None, "logprobs": None}], include_usage=include_usage)
        pieces = list(split_deltas(ch.content))
        for piece, logprobs in zip(pieces, delta_logprobs(ch.logprobs, pieces)):
            yield stream_chunk(c, dialect, [{"index": i, "delta": {"content": piece}, "finish_reason": None,
                                       "logprobs": logprobs}], include_usage=include_usage)
        yield stream_chunk(c, dialect, [{"index": i, "delta": {}, "finish_reason": ch.finish_reason, "logprobs": None}],
                     include_usage=include_usage)
    if include_usage:
        yield stream_chunk(c, dialect, [], usage=c.usage(), include_usage=True)
    yield b"data: [DONE]\n\n"


def model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": MODEL_CREATED, "owned_by": "pai"}
