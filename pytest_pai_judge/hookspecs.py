"""Hooks that other plugins and conftest files implement to extend pytest-pai-judge."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec
def pytest_judge_request(request: Any, item: Any) -> None:
    """Amend a JudgeRequest in place before it is sent or cached."""


@pytest.hookspec(firstresult=True)
def pytest_judge_parse_reply(text: str, mode: str) -> Any:
    """Return a Verdict for a custom reply format, or None to use the built-in parser."""


@pytest.hookspec
def pytest_judge_verdict(verdict: Any, item: Any) -> None:
    """Observe every verdict."""


@pytest.hookspec
def pytest_judge_results(df: Any, config: Any) -> None:
    """Receive the final results DataFrame."""
