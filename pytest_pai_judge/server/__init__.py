"""A local PAI-compatible judge server: chat completions (and files/batches when present) on 127.0.0.1."""

from .app import create_app
from .config import Fault, ServerConfig
from .embedded import LocalJudgeServer

__all__ = ["Fault", "LocalJudgeServer", "ServerConfig", "create_app"]
