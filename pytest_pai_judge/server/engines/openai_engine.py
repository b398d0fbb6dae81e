"""The ``openai`` engine: judge with any OpenAI-compatible model, through PAI's own prompt templates.

Judge requests are turned into the spec's single / pairwise prompt (scene auto-divided by
:mod:`..scenes` when empty, defaults for score_desc and steps), custom templates are passed
through, and the generation parameters are forwarded. The upstream key is read from the
environment variable named by ``config.upstream_api_key_env`` ("EMPTY" when unset) and never stored
or logged. An upstream failure becomes the spec's 500 ``Request_judge_model, load error`` reply.
"""

from __future__ import annotations

import os
from typing import Any

import openai

from ...protocol import ChatCall
from ..config import ServerConfig
from .base import EngineError, EngineReply, JudgeEngine


class OpenAIEngine(JudgeEngine):
    """Forwards the filled judge prompt to ``config.upstream_model`` at ``config.upstream_base_url``."""

    name = "openai"

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        if not config.upstream_base_url or not config.upstream_model:
            raise ValueError("the openai engine needs an upstream base URL and model "
                             "(--upstream-base-url, --upstream-model)")
        self._client: openai.AsyncOpenAI | None = None

    async def startup(self) -> None:
        """Create the client inside the server's event loop (its connection pool belongs to that loop)."""
        self._client = openai.AsyncOpenAI(
            base_url=self.config.upstream_base_url,
            api_key=os.environ.get(self.config.upstream_api_key_env) or "EMPTY",
            timeout=self.config.upstream_timeout_s,
            max_retries=self.config.upstream_max_retries,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def request_kwargs(self, call: ChatCall, choice: int) -> dict[str, Any]:
        """The upstream request: the judge prompt plus the generation parameters that carry over."""
        p = call.params
        kwargs: dict[str, Any] = {"model": self.config.upstream_model, "messages": self.prompt_messages(call),
                                  "temperature": p.temperature, "max_tokens": p.max_tokens}
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
        return kwargs

    async def reply(self, call: ChatCall, *, choice: int) -> EngineReply:
        if self._client is None:
            await self.startup()
        assert self._client is not None
        try:
            completion = await self._client.chat.completions.create(**self.request_kwargs(call, choice))
        except openai.APIStatusError as exc:
            raise EngineError(f"upstream model answered {exc.status_code}: {_short(exc.message)}") from None
        except openai.APIError as exc:
            raise EngineError(f"upstream model unreachable: {type(exc).__name__}: {_short(exc.message)}") from None
        if not completion.choices or completion.choices[0].message.content is None:
            raise EngineError("upstream model returned no content")
        first = completion.choices[0]
        return EngineReply(first.message.content or "", "length" if first.finish_reason == "length" else "stop")


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
