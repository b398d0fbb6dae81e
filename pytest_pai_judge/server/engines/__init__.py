"""Judge engines of the local server: ``lexical`` (offline default), ``openai`` (any OpenAI-compatible model)."""

from .base import BUILTIN_ENGINES, EngineCompletion, EngineError, EngineReply, JudgeEngine, load_engine, prompt_messages

__all__ = ["BUILTIN_ENGINES", "EngineCompletion", "EngineError", "EngineReply", "JudgeEngine",
           "load_engine", "prompt_messages"]
