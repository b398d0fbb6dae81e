"""The judge-engine extension point: what turns a validated request into the judge's reply text.

The server does everything around an engine (validation, faults, latency, ``n``, ``stop``,
``max_tokens``, usage, streaming); an engine only writes one reply. Subclass :class:`JudgeEngine`,
override :meth:`JudgeEngine.reply` (and optionally :meth:`startup` / :meth:`aclose`), and select it
with ``--engine package.module:Class``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from ...protocol import PAIRWISE_TEMPLATE, SINGLE_TEMPLATE, ChatCall, fill_template
from ..config import ServerConfig
from ..scenes import template_values


class EngineError(Exception):
    """An engine could not produce a reply; the server answers 500 ModelServiceFailed with this text."""


@dataclass
class EngineReply:
    """A reply that says why it ended, for engines whose model can stop early (e.g. at max_tokens upstream)."""

    text: str
    finish_reason: Literal["stop", "length"] = "stop"


def prompt_messages(call: ChatCall) -> list[dict[str, str]]:
    """The conversation the judge model sees: for judge calls, the spec's template filled in."""
    if call.kind == "custom":
        return [dict(m) for m in call.messages]
    template = SINGLE_TEMPLATE if call.kind == "single" else PAIRWISE_TEMPLATE
    prompt = fill_template(template, template_values(call.fields))
    return [dict(m) for m in call.messages[:-1]] + [{"role": "user", "content": prompt}]


class JudgeEngine(ABC):
    """Writes the judge's reply for one choice of one request. Override :meth:`reply`."""

    name = "base"

    def __init__(self, config: ServerConfig) -> None:
        self.config = config

    def prompt_messages(self, call: ChatCall) -> list[dict[str, str]]:
        """The prompt, used for ``usage.prompt_tokens`` and the context check; rarely overridden."""
        return prompt_messages(call)

    @abstractmethod
    async def reply(self, call: ChatCall, *, choice: int) -> str | EngineReply:
        """The reply text of choice ``choice`` (0-based); raise :class:`EngineError` on failure.

        ``stop`` and ``max_tokens`` are applied by the server afterwards; an engine must honour
        ``call.params.response_format`` itself (``json_object`` means the text is one JSON object).
        """

    async def startup(self) -> None:
        """Called once from the app's lifespan, inside the server's event loop."""

    async def aclose(self) -> None:
        """Called once at shutdown; release clients here."""


BUILTIN_ENGINES = {
    "lexical": "pytest_pai_judge.server.engines.lexical:LexicalEngine",
    "openai": "pytest_pai_judge.server.engines.openai_engine:OpenAIEngine",
}


def load_engine(spec: str, config: ServerConfig) -> JudgeEngine:
    """Instantiate ``lexical``, ``openai`` or a dotted ``package.module:Class`` engine."""
    target = BUILTIN_ENGINES.get(spec, spec)
    module_name, sep, class_name = target.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"engine must be one of {', '.join(BUILTIN_ENGINES)} or 'package.module:Class', got {spec!r}")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load engine {spec!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, JudgeEngine)):
        raise ValueError(f"engine {spec!r} is not a JudgeEngine subclass")
    return cls(config)
