"""Judge engines of the local server: ``lexical`` (offline default), ``openai`` (any OpenAI-compatible model)."""

from .base import (BUILTIN_ENGINES, EngineCompletion, EngineError, EngineReply, ForwardedParams, JudgeEngine,
                   load_engine, prompt_messages, with_logit_bias)

__all__ = ["BUILTIN_ENGINES", "EngineCompletion", "EngineError", "EngineReply", "ForwardedParams", "JudgeEngine",
           "load_engine", "prompt_messages", "with_logit_bias"]
