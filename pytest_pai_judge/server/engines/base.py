"""The judge-engine extension point: what turns a validated request into the judge's reply text.

The server does everything around an engine (validation, faults, latency, ``n``, ``stop``,
``max_tokens``, usage, streaming); an engine only writes one reply. Subclass :class:`JudgeEngine`,
override :meth:`JudgeEngine.reply` (and optionally :meth:`startup` / :meth:`aclose`), and select it
with ``--engine package.module:Class``. An engine backed by a real model can instead answer all
``n`` choices at once with the model's own usage and logprobs (:meth:`JudgeEngine.complete`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ...protocol import ChatCall
from ..config import ServerConfig
from ..scenes import is_chinese, json_instruction, judge_prompt


class EngineError(Exception):
    """An engine could not produce a reply; the server answers 500 ModelServiceFailed with this text."""


@dataclass
class EngineReply:
    """A reply that says why it ended, for engines whose model can stop early (e.g. at max_tokens upstream)."""

    text: str
    finish_reason: Literal["stop", "length"] = "stop"
    logprobs: dict[str, Any] | None = None
    """The choice's OpenAI ``logprobs`` object (``{"content": [...], "refusal": ...}``), returned as is."""


@dataclass
class EngineCompletion:
    """All ``n`` choices of one request from one model call, with the model's own token counts."""

    replies: list[str | EngineReply]
    usage: dict[str, int] | None = None
    """``prompt_tokens`` / ``completion_tokens`` / ``total_tokens`` as the model counted them; None: the
    server's estimate."""


@dataclass
class StreamDelta:
    """One piece of a streamed reply as the model sent it: text of choice ``index``, its end, or the usage."""

    index: int = 0
    content: str = ""
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: dict[str, Any] | None = None
    usage: dict[str, int] | None = None
    """The model's token counts for the whole request (its last chunk, when asked with include_usage)."""


def prompt_messages(call: ChatCall) -> list[dict[str, str]]:
    """The conversation the judge model sees: for judge calls, the spec's template filled in and followed
    by the reply format (:func:`..scenes.judge_prompt`); custom templates as sent, plus a JSON instruction
    when ``json_object`` is asked and the conversation never says "json" (OpenAI refuses it otherwise)."""
    json_mode = call.params.response_format == "json_object"
    if call.kind == "custom":
        messages = [dict(m) for m in call.messages]
        if json_mode and not any("json" in m["content"].lower() for m in messages):
            last = max(i for i, m in enumerate(messages) if m["role"] == "user")
            text = messages[last]["content"]
            instruction = json_instruction("custom", None, is_chinese(text))
            messages[last] = {**messages[last], "content": text + "\n\n" + instruction}
        return messages
    prompt = judge_prompt(call.kind, call.fields, call.params.response_format)
    return [dict(m) for m in call.messages[:-1]] + [{"role": "user", "content": prompt}]


class JudgeEngine(ABC):
    """Writes the judge's reply for one choice of one request. Override :meth:`reply`."""

    name = "base"
    blocking: ClassVar[bool] = False
    """True for an engine whose replies are CPU work that never awaits (the lexical engine): the server then
    calls :meth:`reply_blocking` on its worker thread instead of awaiting :meth:`reply` on the event loop,
    so other requests (``GET /v1/models``, a batch's status) are answered while it computes."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.stats: Counter[str] = Counter()
        """Counters of the engine's own events (upstream calls, queue depth); the server's app replaces
        this with its live stats, so they show in ``GET /_pai_judge/stats``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass of a blocking engine that brings its own reply() (and no reply_blocking()) must have
        # that reply awaited, not its parent's reply_blocking() called behind its back.
        if "reply" in vars(cls) and "reply_blocking" not in vars(cls) and "blocking" not in vars(cls):
            cls.blocking = False

    def prompt_messages(self, call: ChatCall) -> list[dict[str, str]]:
        """The prompt, used for ``usage.prompt_tokens`` and the context check; rarely overridden."""
        return prompt_messages(call)

    @abstractmethod
    async def reply(self, call: ChatCall, *, choice: int) -> str | EngineReply:
        """The reply text of choice ``choice`` (0-based); raise :class:`EngineError` on failure.

        ``stop`` and ``max_tokens`` are applied by the server afterwards; an engine must honour
        ``call.params.response_format`` itself (``json_object`` means the text is one JSON object).
        """

    def reply_blocking(self, call: ChatCall, *, choice: int) -> str | EngineReply:
        """:meth:`reply`, synchronously, for an engine with ``blocking = True`` (run on a worker thread)."""
        raise NotImplementedError(f"engine {self.name!r} sets blocking = True but has no reply_blocking()")

    async def complete(self, call: ChatCall) -> EngineCompletion | None:
        """All ``call.params.n`` choices at once, for a model that answers them in one call and reports
        its own usage and logprobs; None (the default) makes the server ask :meth:`reply` per choice."""
        return None

    def stream(self, call: ChatCall) -> AsyncIterator[StreamDelta] | None:
        """The reply as the model streams it, for ``stream=true`` requests; None (the default): the server
        streams the finished reply. An engine backed by a streaming model returns an async iterator, so the
        client's first chunk arrives when the model's does, not after the whole reply."""
        return None

    async def count_prompt_tokens(self, call: ChatCall) -> int | None:
        """The prompt's tokens as the model counts them (context check, usage); None: the server's estimate."""
        return None

    # startup / aclose are optional hooks, empty on purpose: an engine overrides only what it needs.
    async def startup(self) -> None:  # noqa: B027
        """Called once from the app's lifespan, inside the server's event loop."""

    async def aclose(self) -> None:  # noqa: B027
        """Called once at shutdown; release clients here."""
