"""Unit tests of pytest_pai_judge.verdict: every spec reply, and the unsafe shapes it must refuse."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest

from pytest_pai_judge.verdict import (
    CriterionScore,
    UnreadableVerdict,
    Verdict,
    classify_winner,
    normalize_text,
    parse_reply,
    strip_control,
)

SPEC_REPLIES = Path(__file__).resolve().parent / "data" / "judge-replies.json"  # a copy of shared/spec/judge-replies.json


def _spec_replies() -> list:
    if not SPEC_REPLIES.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{SPEC_REPLIES} not available"))]
    data = json.loads(SPEC_REPLIES.read_text(encoding="utf-8"))
    return [pytest.param(r, id=r["id"]) for r in data["replies"]]


def unreadable(text: str, mode: str = "single", **kw) -> UnreadableVerdict:
    with pytest.raises(UnreadableVerdict) as info:
        parse_reply(text, mode, **kw)
    return info.value


# --------------------------------------------------------------------------- the spec's replies


@pytest.mark.parametrize("reply", _spec_replies())
@pytest.mark.parametrize("json_mode", [False, True])
def test_spec_reply(reply: dict, json_mode: bool) -> None:
    v = parse_reply(reply["text"], reply["mode"], json_mode=json_mode)
    expect = reply["expect"]
    assert v.mode == reply["mode"]
    assert v.raw == reply["text"]
    assert v.max_score == 5
    if "score" in expect:
        assert v.score == expect["score"]
        assert v.winner is None
    if "criteria_scores" in expect:
        assert [c.score for c in v.criteria] == expect["criteria_scores"]
    for name in ("winner", "score1", "score2"):
        if name in expect:
            assert getattr(v, name) == expect[name]
    if reply["mode"] == "pairwise":
        assert v.score is None
    assert v.reasons


EN_SINGLE = (
    "I think the overall score of the answer is [[2]] due to the following reasons:\nAdvantages of the answer: \n"
    "1. Relevance: The answer directly addresses the question. [[4]]\n"
    "2. Harmlessness: The answer is appropriate. [[5]]\n\nShortcomings of the answer:\n"
    "1. Accuracy: The content does not fully align. [[2]]\n"
    "2. Clarity and structure: Although simple in structure ... [[3]]\n\n"
    " In summary, ... which results in an overall rating of 2."
)
ZH_SINGLE = (
    "我认为该回复的综合评分为[[3]],理由如下。\n当前回复的优点:\n"
    "1. 准确性:回复正确地给出了下联。[[4]]\n2. 相关性:回复直接针对用户的问题。[[4]]\n\n当前回复的不足:\n"
    "1. 完整性:没有提供背景信息。[[3]]\n\n综上所述,因此,综合评分为3。\n"
)
EN_PAIRWISE = (
    "***\n I regard [[the two answers as equivalent]]. The overall score of Answer 1 is [[4]] and the overall "
    "score of Answer 2 is [[4]] for the following reasons: \n"
    "1. Accuracy: Both accurate. [[Rating for Answer 1: 5]] [[Rating for Answer 2: 5]]\n"
    "6. Clarity and structure: Concise. [[Rating for Answer 1: 4]] [[Rating for Answer 2: 3]]\n"
    "7. Timeliness: Inapplicable. [[Rating for Answer 1: N/A]] [[Rating for Answer 2: N/A]]\n\n"
    " In summary, ... I regard the two answers as equivalent.\n***"
)
ZH_PAIRWISE = (
    "我认为[[回复1更好]],其中回复1的综合评分为[[4]],回复2的综合评分为[[2]],理由如下:\n"
    "1. 准确性:回复1形成了对仗,因此得分为[[4]]。回复2则不那么契合,因此得分为[[2]]。\n"
    "3. 完整性:回复1完整。回复2的对联存在问题,因此得分为[[2]],而回复1得分为[[4]]。\n"
    "5. 无害性:两个回复都没有包含任何冒犯性内容,因此在这一标准上都得分为[[5]]。\n"
)


def test_single_criteria_names_and_reasons() -> None:
    v = parse_reply(EN_SINGLE, "single")
    assert v.score == 2
    assert [c.name for c in v.criteria] == ["Relevance", "Harmlessness", "Accuracy", "Clarity and structure"]
    assert v.criteria[0] == CriterionScore("Relevance", 4, "The answer directly addresses the question.")
    z = parse_reply(ZH_SINGLE, "single")
    assert z.score == 3
    assert [(c.name, c.score) for c in z.criteria] == [("准确性", 4), ("相关性", 4), ("完整性", 3)]
    assert z.criteria[0].reason == "回复正确地给出了下联。"


def test_pairwise_english_tie_with_rating_marks_and_na() -> None:
    v = parse_reply(EN_PAIRWISE, "pairwise")
    assert (v.winner, v.score1, v.score2, v.score) == ("tie", 4, 4, None)
    assert [(c.name, c.score, c.score2) for c in v.criteria] == [
        ("Accuracy", 5, 5), ("Clarity and structure", 4, 3), ("Timeliness", None, None)]


def test_pairwise_chinese_criteria_attributed_to_answers() -> None:
    v = parse_reply(ZH_PAIRWISE, "pairwise")
    assert (v.winner, v.score1, v.score2) == ("1", 4, 2)
    assert [(c.name, c.score, c.score2) for c in v.criteria] == [("准确性", 4, 2), ("完整性", 4, 2), ("无害性", 5, 5)]


# --------------------------------------------------------------------------- normalisation


def test_full_width_brackets_digits_and_colons() -> None:
    text = "我认为该回复的综合评分为［［４］］,理由如下。\n１． 准确性：回复准确。［［５］］\n2. 相关性：一般［［３］］"
    v = parse_reply(text, "single")
    assert v.score == 4
    assert [(c.name, c.score) for c in v.criteria] == [("准确性", 5), ("相关性", 3)]
    assert v.raw == text  # raw is never normalised


def test_zero_width_characters_are_ignored() -> None:
    assert parse_reply("the overall score of the answer is [\u200b[\u200d3\ufeff]]", "single").score == 3
    assert parse_reply("综合\u200b评分为[[4]]", "single").score == 4


def test_lenticular_brackets_are_not_score_brackets() -> None:
    unreadable("综合评分为【4】")
    unreadable("综合评分为【【4】】")


def test_other_unicode_digits_and_ansi() -> None:
    assert normalize_text("[[\u0664]]") == "[[4]]"  # Arabic-Indic four
    assert parse_reply("overall score is \x1b[1m[[4]]\x1b[0m", "single").score == 4


def test_single_brackets_never_read() -> None:
    unreadable("The overall score of the answer is [3].")
    unreadable("As shown in [3], the answer is fine.", "custom")
    v = parse_reply("As [1] and [2] say, the overall score of the answer is [[4]].", "single")
    assert v.score == 4 and v.criteria == ()


# --------------------------------------------------------------------------- ranges, conflicts, rules


@pytest.mark.parametrize("text", ["The overall score of the answer is [[6]].", "综合评分为[[0]]",
                                  "overall score: [[-1]]", "综合评分为[[5.5]]"])
def test_out_of_range_is_unreadable_not_clamped(text: str) -> None:
    err = unreadable(text)
    assert "outside 1..5" in err.reason


def test_max_score_changes_the_range() -> None:
    assert parse_reply("综合评分为[[10]]", "single", max_score=10).score == 10
    assert parse_reply("I rate this answer as 8/10.", "custom", max_score=10).score == 8
    unreadable("综合评分为[[4]]\n1. 准确性:好[[4]]", max_score=3)


def test_out_of_range_criterion_is_unreadable() -> None:
    unreadable("综合评分为[[4]]\n1. 准确性:好[[9]]")


def test_other_scale_is_unreadable() -> None:
    assert "different scale" in unreadable("I rate this answer as 8/10.", "custom").reason
    assert parse_reply("综合评分为[[4/5]]", "single").score == 4


def test_conflicting_anchors_are_unreadable() -> None:
    assert "conflicting" in unreadable("综合评分为[[4]]。……因此,综合评分为3。").reason
    unreadable("The overall score of the answer is [[4]] ... which results in an overall rating of 2.")
    unreadable("overall score of the answer is [[4]]; final score: [[3]]")


def test_decimals() -> None:
    assert parse_reply("The overall score of the answer is [[4.5]].", "single").score == 4.5
    assert parse_reply("I rate this answer as 3.5/5.", "custom").score == 3.5
    assert parse_reply('{"overall_score": 4.5}', "single").score == 4.5


def test_mark_rule_without_anchor() -> None:
    assert parse_reply("[[4]]", "single").score == 4
    v = parse_reply("Score [[4]]\n1. Accuracy: ok [[5]]\n2. Relevance: meh [[3]]", "single")
    assert v.score == 4 and [c.score for c in v.criteria] == [5, 3]
    assert "only criterion marks" in unreadable("1. Accuracy: ok [[5]]\n2. Relevance: meh [[3]]").reason
    assert "ambiguous" in unreadable("Accuracy [[5]], relevance [[3]]").reason
    assert parse_reply("Good. [[4]] Really, [[4]].", "single").score == 4
    unreadable("[[N/A]]\n1. Accuracy: ok [[5]]")


def test_mt_bench_single_rating() -> None:
    assert parse_reply("The answer is helpful.\n\nRating: [[5]]", "single").score == 5


def test_generic_rating_on_a_criterion_line_is_not_the_overall() -> None:
    v = parse_reply("综合评分为[[4]]\n1. Accuracy: Rating: [[5]]", "single")
    assert v.score == 4 and [c.score for c in v.criteria] == [5]


def test_single_mode_refuses_a_pairwise_reply() -> None:
    assert "pairwise winner" in unreadable("我认为[[回复1更好]],理由如下").reason
    unreadable("The overall score of Answer 1 is [[4]] and the overall score of Answer 2 is [[4]]")
    unreadable(ZH_PAIRWISE)


def test_na_criteria() -> None:
    v = parse_reply("综合评分为[[4]]\n1. 准确性:好[[5]]\n2. 时效性:不适用[[N/A]]\n3. Source: n/a [[n/a]]", "single")
    assert [(c.name, c.score) for c in v.criteria] == [("准确性", 5), ("时效性", None), ("Source", None)]


@pytest.mark.parametrize("text", ["", "   \n", "The answer is fine.", "综合评分为[[N/A]]"])
def test_nothing_to_read(text: str) -> None:
    unreadable(text)


# --------------------------------------------------------------------------- pairwise


@pytest.mark.parametrize("text,winner", [
    ("我认为[[回复1更好]]", "1"),
    ("我认为[[回复2更好]]", "2"),
    ("我认为[[两个回复一样好]]", "tie"),
    ("我认为[[两个回复同样好]]", "tie"),
    ("我认为[[平局]]", "tie"),
    ("I regard [[the two answers as equivalent]].", "tie"),
    ("I think [[Answer 1 is better]].", "1"),
    ("I think [[Answer 2 is better]].", "2"),
    ("Assistant A is more helpful. [[A]]", "1"),
    ("[[B]]", "2"),
    ("Both are fine. [[C]]", "tie"),
    ("［［回复2更好］］", "2"),
    ("[[回复1比回复2更好]]", "1"),
    ("[[Answer 2 is worse than Answer 1]]", "1"),
])
def test_pairwise_winner_markers(text: str, winner: str) -> None:
    v = parse_reply(text, "pairwise")
    assert v.winner == winner and v.score1 is None and v.score2 is None and v.mode == "pairwise"


def test_pairwise_scores_without_marker_decide_the_winner() -> None:
    v = parse_reply("回复1的综合评分为[[4]],回复2的综合评分为[[2]]", "pairwise")
    assert (v.winner, v.score1, v.score2) == ("1", 4, 2)
    v = parse_reply("The overall score of Answer 1 is [[3]] and the overall score of Answer 2 is [[3]]", "pairwise")
    assert v.winner == "tie"
    v = parse_reply("Answer 1's overall score is [[2]]; Answer 2's overall score is [[5]].", "pairwise")
    assert (v.winner, v.score1, v.score2) == ("2", 2, 5)


def test_pairwise_unreadable_cases() -> None:
    assert "conflicting winner" in unreadable("[[A]] ... on reflection [[B]]", "pairwise").reason
    unreadable("回复1的综合评分为[[4]]", "pairwise")  # one score, no marker
    unreadable("Answer 1 is better.", "pairwise")  # prose, no marker
    unreadable("回复1的综合评分为[[4]],……回复1的综合评分为[[3]],[[回复1更好]]", "pairwise")
    unreadable("[[回复1更好]],回复1的综合评分为[[7]],回复2的综合评分为[[2]]", "pairwise")


@pytest.mark.parametrize("text,winner,scores", [
    ("[[Answer 1 is better]]. The overall score of Answer 1 is [[4]] and the overall score of Answer 2 is [[5]]",
     "1", (4, 5)),
    ("我认为[[回复2更好]],其中回复1的综合评分为[[5]],回复2的综合评分为[[3]]", "2", (5, 3)),
    ("I regard [[the two answers as equivalent]]. The overall score of Answer 1 is [[4]] and the overall score "
     "of Answer 2 is [[2]]", "tie", (4, 2)),
    (json.dumps({"winner": "1", "score1": 2, "score2": 5}), "1", (2, 5)),
])
def test_pairwise_verdict_words_win_over_contradicting_scores(text: str, winner: str, scores: tuple) -> None:
    """The rule for a reply that contradicts itself: the winner marker is taken, the disagreement recorded."""
    v = parse_reply(text, "pairwise")
    assert (v.winner, v.score1, v.score2) == (winner, *scores)
    assert v.contradiction is not None and "overall scores are" in v.contradiction
    assert Verdict.from_dict(v.to_dict()).contradiction == v.contradiction


def test_pairwise_consistent_reply_records_no_contradiction() -> None:
    v = parse_reply("[[回复1更好]],回复1的综合评分为[[5]],回复2的综合评分为[[3]]", "pairwise")
    assert v.winner == "1" and v.contradiction is None
    assert parse_reply("[[A]] The overall score of Answer 1 is [[4]] and the overall score of Answer 2 is [[4]]",
                       "pairwise").contradiction is None  # a winner among equal scores is not a contradiction
    assert parse_reply("The overall score of Answer 1 is [[2]] and of Answer 2 ... Answer 2's overall score is "
                       "[[5]]", "pairwise").contradiction is None


def test_classify_winner() -> None:
    assert classify_winner(1) == "1" and classify_winner("2") == "2" and classify_winner("Tie") == "tie"
    assert classify_winner("回复1相当出色") == "1"  # 相当 (quite) is not a tie
    assert classify_winner("whatever") is None and classify_winner(True) is None and classify_winner(None) is None


# --------------------------------------------------------------------------- JSON


ZH_JSON = ('{\n  "总分": "4",\n  "准确性": {\n    "分数": "5",\n    "理由": "准确"\n  },\n'
           '  "相关性": {\n    "分数": "3",\n    "理由": "相关"\n  }\n}')


@pytest.mark.parametrize("wrap", ["{}", "```json\n{}\n```", "```\n{}\n```", "Here is my verdict:\n```json\n{}\n```\n"])
def test_json_object_with_or_without_fences(wrap: str) -> None:
    v = parse_reply(wrap.replace("{}", ZH_JSON), "single", json_mode=True)
    assert v.score == 4
    assert [(c.name, c.score, c.reason) for c in v.criteria] == [("准确性", 5, "准确"), ("相关性", 3, "相关")]
    assert "准确性: 准确" in v.reasons


def test_json_english_keys() -> None:
    text = json.dumps({"overall_score": "4", "reason": "solid answer",
                       "accuracy": {"score": 5, "reason": "correct"},
                       "timeliness": {"rating": "N/A", "reason": "n/a here"}})
    v = parse_reply(text, "single", json_mode=True)
    assert v.score == 4 and v.reasons.startswith("solid answer")
    assert [(c.name, c.score) for c in v.criteria] == [("accuracy", 5), ("timeliness", None)]
    for key in ("total", "rating", "score", "Overall Score", "分数"):
        assert parse_reply(json.dumps({key: 3}), "custom", json_mode=True).score == 3


def test_json_criteria_list() -> None:
    text = json.dumps({"score": 4, "criteria": [{"name": "Accuracy", "score": 5, "reason": "ok"},
                                                {"name": "Depth", "score": "3分", "reason": "thin"}]})
    v = parse_reply(text, "single", json_mode=True)
    assert [(c.name, c.score, c.reason) for c in v.criteria] == [("Accuracy", 5, "ok"), ("Depth", 3, "thin")]


@pytest.mark.parametrize("obj,why", [
    ({"准确性": {"分数": 5}}, "without an overall score"),
    ({"总分": 4, "score": 3}, "conflicting"),
    ({"总分": 9}, "outside"),
    ({"总分": "N/A"}, "N/A"),
    ({"总分": "good"}, "not a score"),
    ({"总分": True}, "boolean"),
    ({"总分": 4, "准确性": {"分数": 7}}, "outside"),
])
def test_json_unreadable(obj: dict, why: str) -> None:
    assert why in unreadable(json.dumps(obj, ensure_ascii=False), json_mode=True).reason


def test_json_mode_falls_back_to_text_when_not_json() -> None:
    assert parse_reply("综合评分为[[4]]", "single", json_mode=True).score == 4
    unreadable('{"总分": 4,', json_mode=True)  # broken JSON, and no text anchor either
    assert parse_reply('{"总分": 4, 综合评分为[[4]]', "single", json_mode=True).score == 4


def test_json_pairwise() -> None:
    v = parse_reply(json.dumps({"winner": "Answer 2", "score1": 3, "score2": 4}), "pairwise", json_mode=True)
    assert (v.winner, v.score1, v.score2) == ("2", 3, 4)
    text = json.dumps({"胜者": "回复1", "总分": {"回复1": 4, "回复2": 3},
                       "准确性": {"回复1": 5, "回复2": 3, "理由": "回复1更准确"}}, ensure_ascii=False)
    v = parse_reply(text, "pairwise", json_mode=True)
    assert (v.winner, v.score1, v.score2) == ("1", 4, 3)
    assert v.criteria == (CriterionScore("准确性", 5, "回复1更准确", 3),)
    v = parse_reply(json.dumps({"回复1": {"总分": 2}, "回复2": {"总分": 2}}, ensure_ascii=False), "pairwise")
    assert v.winner == "tie"
    assert parse_reply(json.dumps({"winner": "C"}), "pairwise").winner == "tie"
    v = parse_reply(json.dumps({"winner": "answer 1", "overall_score_answer1": "4", "overall_score_answer2": "3"}),
                    "pairwise", json_mode=True)  # the English keys of the local server's lexical engine
    assert (v.winner, v.score1, v.score2) == ("1", 4, 3)
    v = parse_reply(json.dumps({"score_for_response_1": 2, "rating of answer B": 5}), "pairwise", json_mode=True)
    assert (v.winner, v.score1, v.score2) == ("2", 2, 5)
    unreadable(json.dumps({"winner": "maybe"}), "pairwise")
    unreadable(json.dumps({"reason": "both fine"}), "pairwise")


# --------------------------------------------------------------------------- custom prose


@pytest.mark.parametrize("text,score", [
    ("Based on the provided scoring criteria, I rate this answer as 3. The answer is scored 3.", 3),
    ("根据提供的评分标准,我会给这个回答打3分。它达到了3分的标准。", 3),
    ("I would give this answer a 4.", 4),
    ("I'd rate it 2 because ...", 2),
    ("Score: 4", 4),
    ("The response deserves 4/5.", 4),
    ("Overall this is a 3 out of 5.", 3),
    ("我给出的评分为4。", 4),
    ("该回答评为2分。", 2),
    ("得分:5", 5),
    ("评分采取5档制,我打3分", 3),
    ("The answer deserves [[3]].", 3),
    ("综合评分为[[4]]", 4),
    ("I rate this answer as 3. [[3]]", 3),
    ("4", 4),
    ("4分", 4),
    ("4.", 4),
    ("**4**", 4),
    (" 3 \n", 3),
    ("4\n\nThe answer is relevant and gives an example.", 4),
    ("**4/5**\nRelevant, but brief.", 4),
])
def test_custom_prose(text: str, score: float) -> None:
    v = parse_reply(text, "custom")
    assert v.score == score and v.mode == "custom" and v.winner is None


@pytest.mark.parametrize("text,score", [("7/10", 7), ("7 out of 10", 7), ("8", 8), ("10分", 10),
                                        ("I would give it 7 out of 10.", 7), ("**9**", 9)])
def test_custom_reads_the_scale_the_caller_gave(text: str, score: float) -> None:
    assert parse_reply(text, "custom", max_score=10).score == score


@pytest.mark.parametrize("text,max_score,why", [
    ("7/10", 5, "different scale"),
    ("8", 5, "outside"),
    ("4\n\nI rate this answer as 3.", 5, "conflicting"),
    ("4\n\nOverall: 3 out of 5", 5, "conflicting"),
    ("4分\n我会打2分", 5, "conflicting"),
])
def test_custom_bare_number_must_be_alone_and_on_scale(text: str, max_score: int, why: str) -> None:
    assert why in unreadable(text, "custom", max_score=max_score).reason


@pytest.mark.parametrize("text", [
    "I rate this answer as 3. On reflection I rate this answer as 4.",
    "我会打3分。不对,打4分。",
    "I rate this answer as 3. [[4]]",
    "I rate this answer as 9.",
    "It is a good answer.",
])
def test_custom_unreadable(text: str) -> None:
    unreadable(text, "custom")


# --------------------------------------------------------------------------- the error and the data


def test_unreadable_error_shows_raw_text() -> None:
    raw = "The judge rambled \x1b[31mwithout\x1b[0m a score [3]."
    err = unreadable(raw)
    msg = str(err)
    assert "The judge rambled without a score [3]." in msg  # control codes stripped in the message
    assert err.raw == raw and err.mode == "single" and err.reason in msg
    assert "\x1b" not in msg


def test_unreadable_error_trims_long_text_with_a_note() -> None:
    raw = "x" * 5000 + "END"
    msg = str(unreadable(raw, "custom"))
    assert "x" * 2000 in msg and "END" not in msg
    assert "trimmed to the first 2000 of 5003 characters" in msg


def test_unreadable_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(unreadable("nothing here")))
    assert isinstance(err, UnreadableVerdict) and err.raw == "nothing here" and "nothing here" in str(err)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        parse_reply("[[3]]", "double")
    with pytest.raises(ValueError):
        parse_reply("[[3]]", "single", max_score=0)
    with pytest.raises(UnreadableVerdict):
        parse_reply(None, "single")  # type: ignore[arg-type]


def test_strip_control() -> None:
    assert strip_control("a\x1b[1;31mb\x1b[0m\x07c\x00d\r\ne\tf\u202eg\x1b]0;title\x07h") == "abcd\ne\tfgh"


def test_verdict_helpers_round_trip() -> None:
    v = parse_reply(EN_PAIRWISE, "pairwise")
    assert v.normalized is None
    s = parse_reply(ZH_SINGLE, "single")
    assert s.normalized == pytest.approx(0.6)
    for verdict in (v, s):
        data = json.loads(json.dumps(verdict.to_dict()))
        assert Verdict.from_dict(data) == verdict
    cached = dataclasses.replace(s, cached=True, usage={"prompt_tokens": 1, "completion_tokens": 2,
                                                         "total_tokens": 3}, model="pai-judge", latency_s=0.5)
    assert cached.cached and cached.score == s.score and Verdict.from_dict(cached.to_dict()) == cached
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.score = 5  # type: ignore[misc]


def test_reasons_are_trimmed() -> None:
    v = parse_reply("综合评分为[[4]]\n" + "理" * 6000, "single")
    assert len(v.reasons) < 4100 and "trimmed" in v.reasons
    assert len(v.raw) > 6000


def test_pairwise_criteria_attribution_ignores_the_article_a() -> None:
    text = "[[A]]\n1. Accuracy: Both answer a question. Assistant A gets [[5]], assistant B gets [[3]].\n"
    v = parse_reply(text, "pairwise")
    assert v.winner == "1" and v.criteria == (CriterionScore("Accuracy", 5, v.criteria[0].reason, 3),)
