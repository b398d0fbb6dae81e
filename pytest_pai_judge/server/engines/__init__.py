"""Judge engines of the local server: ``lexical`` (offline default), ``openai`` (any OpenAI-compatible model)."""

from .base import EngineCompletion, EngineError, EngineReply, JudgeEngine, StreamDelta, prompt_messages
from .loader import BUILTIN_ENGINES, load_engine

__all__ = ["BUILTIN_ENGINES", "EngineCompletion", "EngineError", "EngineReply", "JudgeEngine",
           "StreamDelta", "load_engine", "prompt_messages"]
