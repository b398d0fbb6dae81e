"""Check the judge itself: does it agree with people on a labelled set (examples/labels.jsonl)?

24 answers (English and Chinese) scored 1-5 by a person. Against PAI (or the server's openai engine
on a real model) raise the bar and drop the xfail; against the embedded lexical stand-in the
figures are honestly poor -- it scores word overlap with the reference, so "Lyon is the capital of
France." scores high -- and this test says so as an expected failure.
"""

import pytest

from pytest_pai_judge import assert_judge_agrees


@pytest.mark.xfail(strict=True, reason="the offline lexical engine is not a judge of meaning: it agrees only "
                                       "partly with people (quadratic-weighted kappa about 0.3)")
def test_the_judge_agrees_with_people():
    assert_judge_agrees("labels.jsonl", id="id", threshold=4, min_kappa=0.6, temperature=0)
