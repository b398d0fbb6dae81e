"""The shipped examples pass the same way in every judge mode (they are what a new user runs first)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("mode", ["deferred", "batch"])
def test_examples_pass_in_every_mode(pytester: pytest.Pytester, mode: str) -> None:
    shutil.copytree(EXAMPLES, pytester.path / "examples")
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess("examples", f"--judge-mode={mode}", "--judge-cache=off",
                                           "-p", "no:randomly")
    result.assert_outcomes(passed=10, xfailed=2)
