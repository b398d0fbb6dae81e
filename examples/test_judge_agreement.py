"""Check the judge itself: does it agree with people on a labelled set (examples/labels.jsonl), and is it biased?

24 answers (English and Chinese) scored 1-5 by a person. Against PAI (or the server's openai engine
on a real model) raise the bar and drop the xfail; against the embedded lexical stand-in the
figures are honestly poor -- it scores word overlap with the reference, so "Lyon is the capital of
France." scores high -- and this test says so as an expected failure.
"""

import pytest

from pytest_pai_judge import assert_judge_agrees, assert_judge_unbiased


@pytest.mark.xfail(strict=True, reason="the offline lexical engine is not a judge of meaning: it agrees only "
                                       "partly with people (quadratic-weighted kappa about 0.3)")
def test_the_judge_agrees_with_people():
    assert_judge_agrees("labels.jsonl", id="id", threshold=4, min_kappa=0.6, temperature=0)


def test_the_judge_is_not_swayed_by_position_or_padding():
    """Bias probes on one case: both answer orders, the answer padded with empty words, and 5 samples of it."""
    assert_judge_unbiased("What is the capital of France?", "Paris is the capital of France.",
                          other="Lyon is a large city in France.", ref_answer="Paris is the capital of France.")
