"""pytest-pai-judge: judge-model assertions for pytest, and a local PAI-compatible judge server.

The public API is importable from here; heavy parts (pandas, datasets, openai) load on first use.
"""

from __future__ import annotations

from typing import Any

from .assertions import (
    Comparison,
    Judge,
    assert_judge_agrees,
    assert_judge_custom,
    assert_judge_not_worse,
    assert_judge_prefers,
    assert_judge_score,
    assert_judge_unbiased,
)
from .errors import JudgeAssertionError, JudgeError
from .request import JudgeRequest

__version__ = "0.1.0"

_LAZY = {"cases": ("dataset_cases", "cases"), "Verdict": ("verdict", "Verdict"),
         "UnreadableVerdict": ("verdict", "UnreadableVerdict"), "parse_reply": ("verdict", "parse_reply"),
         "LocalJudgeServer": ("server", "LocalJudgeServer"), "JudgeClient": ("client", "JudgeClient"),
         "errors": ("errors", None)}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        module = importlib.import_module(f".{module_name}", __name__)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["assert_judge_score", "assert_judge_prefers", "assert_judge_not_worse", "assert_judge_custom",
           "assert_judge_agrees", "assert_judge_unbiased", "Judge",
           "Comparison", "JudgeAssertionError", "JudgeError", "JudgeRequest", "cases", "Verdict", "UnreadableVerdict",
           "parse_reply", "LocalJudgeServer", "JudgeClient", "errors"]
