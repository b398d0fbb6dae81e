"""A small LLM regression suite: stored answers of "our model", judged against reference answers.

Run it with ``pytest examples/``: with no ``--judge-base-url`` the plugin starts an embedded
local PAI-compatible server (the offline lexical engine), so this needs no network and no token.
Point it at PAI with ``JUDGE_MODEL_BASE_URL=... JUDGE_MODEL_TOKEN=... pytest examples/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_pai_judge import assert_judge_not_worse, assert_judge_score

ANSWERS = [json.loads(line) for line in (Path(__file__).parent / "answers.jsonl").read_text("utf-8").splitlines()
           if line.strip()]
KNOWN_BAD = {"moon-landing-wrong"}  # a regression we know about: kept visible as xfail until fixed


def _params() -> list:
    params = []
    for row in ANSWERS:
        marks = [pytest.mark.xfail(reason="known wrong answer, tracked", strict=True)] if row["id"] in KNOWN_BAD else []
        params.append(pytest.param(row, id=row["id"], marks=marks))
    return params


@pytest.mark.judge(min_score=4)
@pytest.mark.parametrize("row", _params())
def test_answer_quality(row: dict) -> None:
    assert_judge_score(row["question"], row["answer"], ref_answer=row["ref_answer"])


def test_release_not_worse_than_baseline() -> None:
    """Pairwise, judged in both orders: the new answer must not lose to last release's."""
    assert_judge_not_worse(
        "How do I reverse a list in Python?",
        candidate="Use list.reverse() to reverse in place, or list[::-1] for a reversed copy.",
        baseline="You can reverse it.",
    )


def test_judge_fixture_reads_a_verdict(judge) -> None:
    verdict = judge.score("What is the capital of France?", "Paris.", ref_answer="Paris")
    assert 1 <= verdict.score <= verdict.max_score
