"""Engines for a local server that plays the *upstream* model of another server's ``openai`` engine.

Loaded as ``upstream_engines:RecordingEngine`` (tests/server is on sys.path). The engine keeps every
call it received, so a test sees exactly what the front server sent upstream over real HTTP, and it
reports its own usage and logprobs, so pass-through can be told apart from the front's estimates.
"""

from __future__ import annotations

import re
from typing import Any

from pytest_pai_judge.protocol import ChatCall
from pytest_pai_judge.server import ServerConfig
from pytest_pai_judge.server.engines import EngineCompletion, EngineReply, JudgeEngine
from pytest_pai_judge.server.engines.lexical import LexicalEngine

UPSTREAM_USAGE = {"prompt_tokens": 4321, "completion_tokens": 765, "total_tokens": 5086}
"""What the recording upstream says it used: far from any local estimate of the same texts."""

_PIECE = re.compile(r"\s+|[A-Za-z0-9_]{1,4}|[^\sA-Za-z0-9_]")


def fake_logprobs(text: str, top: int | None, choice: int) -> dict[str, Any]:
    """An OpenAI ``logprobs`` object whose tokens concatenate to ``text`` (values differ per choice)."""
    entries = []
    for i, token in enumerate(_PIECE.findall(text)):
        logprob = -round(0.01 * ((i + choice) % 9), 2)
        alternatives = [{"token": token, "bytes": list(token.encode()), "logprob": logprob}]
        alternatives += [{"token": f"alt{k}", "bytes": list(f"alt{k}".encode()), "logprob": logprob - 1 - k}
                         for k in range(max(0, (top or 0) - 1))]
        entries.append({"token": token, "bytes": list(token.encode()), "logprob": logprob,
                        "top_logprobs": alternatives[:top or 0]})
    return {"content": entries, "refusal": None}


class RecordingEngine(JudgeEngine):
    """Answers like the lexical engine, all ``n`` choices at once, and records each call it got."""

    name = "recording"

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self.calls: list[ChatCall] = []
        self._lexical = LexicalEngine(config)

    async def complete(self, call: ChatCall) -> EngineCompletion:
        self.calls.append(call)
        replies: list[str | EngineReply] = []
        for choice in range(call.params.n):
            text = await self._lexical.reply(call, choice=choice)
            logprobs = fake_logprobs(text, call.params.top_logprobs, choice) if call.params.logprobs else None
            replies.append(EngineReply(text, "stop", logprobs))
        return EngineCompletion(replies, dict(UPSTREAM_USAGE))

    async def reply(self, call: ChatCall, *, choice: int) -> str:
        return await self._lexical.reply(call, choice=choice)
