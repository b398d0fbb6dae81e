"""Loading the server's judge engine by name: ``lexical``, ``openai``, or any ``package.module:Class``."""

from __future__ import annotations

import importlib

from ..config import ServerConfig
from .base import JudgeEngine

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
