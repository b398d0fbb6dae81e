"""A small LLM regression suite: stored answers of "our model", judged against reference answers.

Run it with ``pytest examples/``: with no ``--judge-base-url`` the plugin starts an embedded
local PAI-compatible server (the offline lexical engine), so this needs no network and no token.
Point it at PAI with ``JUDGE_MODEL_BASE_URL=... JUDGE_MODEL_TOKEN=... pytest examples/``.

Reports and drift against the committed baseline:
``pytest examples/ --judge-report=judge.html --judge-baseline=examples/baseline.csv --judge-max-drop=1``
"""

from __future__ import annotations

import pytest

from pytest_pai_judge import assert_judge_not_worse, assert_judge_score, cases

# A regression we know about stays visible as a strict xfail until it is fixed.
KNOWN_BAD = {"moon-landing-wrong": pytest.mark.xfail(reason="known wrong answer, tracked", strict=True)}


@pytest.mark.judge(min_score=4)
@pytest.mark.parametrize("question,answer,ref_answer", cases("answers.jsonl", question="question", answer="answer",
                                                             ref_answer="ref_answer", id="id", marks=KNOWN_BAD))
def test_answer_quality(question: str, answer: str, ref_answer: str) -> None:
    assert_judge_score(question, answer, ref_answer=ref_answer)


@pytest.mark.parametrize("question,candidate,baseline", cases("releases.jsonl", question="question",
                                                              candidate="release", baseline="baseline", id="id"))
def test_release_not_worse_than_baseline(question: str, candidate: str, baseline: str) -> None:
    """Pairwise, judged in both orders: this release's answer must not lose to the last release's."""
    assert_judge_not_worse(question, candidate, baseline)


@pytest.mark.judge(defer=False)
def test_judge_fixture_reads_a_verdict(judge) -> None:
    """A verdict read as a value. In --judge-mode=deferred / batch verdicts are known only at the end of
    the run, so a test that reads one says so: defer=False judges this test synchronously in every mode
    (the assertions above still defer)."""
    verdict = judge.score("What is the capital of France?", "Paris.", ref_answer="Paris")
    assert 1 <= verdict.score <= verdict.max_score
