"""The lexical engine samples: scores drawn around the deterministic score at the request's temperature,
reproducible per (judge content, seed, choice), over real HTTP against local servers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from pytest_pai_judge.protocol import DEFAULT_TEMPERATURE, ChatCall, parse_chat_body
from pytest_pai_judge.server import LocalJudgeServer
from pytest_pai_judge.server.engines.base import prompt_messages
from pytest_pai_judge.server.engines.lexical import assess, choice_draws, sampled_score, scale_of, score_sigma, to_score
from pytest_pai_judge.verdict import Verdict, parse_reply

T0_REPLIES = Path(__file__).resolve().parent.parent / "data" / "lexical-replies-t0.json"

ZH_Q, ZH_A = "什么是光合作用?", "光合作用是植物制造养分的过程。"
ZH_REF = "光合作用是绿色植物利用光能把二氧化碳和水转化为有机物的过程。"
EN_Q, EN_A = "What is the capital of France?", "Lyon is a large city in France."
EN_REF = "Paris is the capital of France."
MID = {"question": EN_Q, "answer": EN_A, "ref_answer": EN_REF}
"""A single case in the middle of the 1-5 scale (s0 = 3)."""
DESC10 = "1: completely wrong\n10: perfect"
CRITERIA_QUALITY = {"准确性": "accuracy", "Accuracy": "accuracy", "相关性": "relevance", "Relevance": "relevance",
                    "完整性": "completeness", "Completeness": "completeness", "清晰度和结构": "clarity",
                    "Clarity and structure": "clarity", "无害性": None, "Harmlessness": None}


def body(mode: str = "single", *, temperature: float | None = None, seed: int | None = None, n: int | None = None,
         json_object: bool = False, **fields: Any) -> dict[str, Any]:
    b: dict[str, Any] = {"model": "pai-judge",
                         "messages": [{"role": "user", "content": [{"mode": mode, "type": "json", "json": fields}]}]}
    for key, value in (("temperature", temperature), ("seed", seed), ("n", n)):
        if value is not None:
            b[key] = value
    if json_object:
        b["response_format"] = {"type": "json_object"}
    return b


def custom_body(content: str, **params: Any) -> dict[str, Any]:
    return {"model": "pai-judge", "messages": [{"role": "user", "content": content}], **params}


def replies(server: LocalJudgeServer, b: dict[str, Any]) -> list[str]:
    r = httpx.post(f"{server.url}/chat/completions", json=b, timeout=30)
    assert r.status_code == 200, r.text
    return [c["message"]["content"] for c in r.json()["choices"]]


def read(b: dict[str, Any], text: str) -> Verdict:
    call = parse_chat_body(b)
    max_score = scale_of(text_of(call)) if call.kind == "custom" else call.fields["max_score"]
    return parse_reply(text, call.kind, max_score=max_score, json_mode=call.params.response_format == "json_object")


def text_of(call: ChatCall) -> str:
    return "\n".join(m["content"] for m in call.messages)


def s0_of(fields: dict[str, Any], answer: str = "answer") -> int:
    """The deterministic (temperature-0) overall score of one answer, computed without HTTP."""
    return to_score(assess(fields["question"], fields[answer], fields.get("ref_answer")).overall,
                    fields.get("max_score") or 5)


def expected(b: dict[str, Any], choice: int, answer: int = 0) -> int:
    """The overall score choice ``choice`` must show for answer ``answer`` (0 or 1), computed without HTTP."""
    call = parse_chat_body(b)
    base = s0_of(call.fields, "answer" if call.kind == "single" else f"answer{answer + 1}")
    return sampled_score(base, call.fields["max_score"], call.params.temperature, choice_draws(call, choice)[answer])


def overall_scores(server: LocalJudgeServer, b: dict[str, Any]) -> list[float | None]:
    return [read(b, text).score for text in replies(server, b)]


# --------------------------------------------------------------------------- the mapping itself


def test_the_mid_scale_case_is_mid_scale() -> None:
    assert s0_of(MID) == 3


def test_sampled_score_maps_a_draw_by_sigma_and_clamps() -> None:
    assert score_sigma(0.0) == 0.0 and score_sigma(0.2) == pytest.approx(0.2) and score_sigma(1.0) == 1.0
    assert sampled_score(3, 5, 0.0, 2.9) == 3  # temperature 0: always s0
    assert sampled_score(3, 5, 1.0, 0.49) == 3 and sampled_score(3, 5, 1.0, 0.5) == 4  # round half up
    assert sampled_score(3, 5, 1.0, -0.5) == 3 and sampled_score(3, 5, 1.0, -0.51) == 2
    assert sampled_score(3, 5, 0.2, 2.4) == 3 and sampled_score(3, 5, 0.2, 2.6) == 4
    assert sampled_score(5, 5, 1.9, 3.0) == 5 and sampled_score(1, 10, 1.9, -3.0) == 1  # clamped to the scale
    assert sampled_score(4, 10, 1.5, 2.0) == 7


# --------------------------------------------------------------------------- temperature 0 and the default


def test_temperature_zero_gives_exactly_the_replies_of_before(judge_server: LocalJudgeServer) -> None:
    """The unsampled engine's replies (tests/data/lexical-replies-t0.json, made by git 35035c1), to the letter."""
    data = json.loads(T0_REPLIES.read_text("utf-8"))
    assert len(data["cases"]) == 8
    for case in data["cases"]:
        assert replies(judge_server, {**case["body"], "temperature": 0}) == case["replies"], case["id"]


def test_temperature_zero_never_moves_a_score(judge_server: LocalJudgeServer) -> None:
    for seed in range(12):
        b = body(temperature=0, seed=seed, n=3, **MID)
        assert overall_scores(judge_server, b) == [3, 3, 3]
        p = body("pairwise", temperature=0, seed=seed, question=EN_Q, answer1=EN_A, answer2=EN_REF, ref_answer=EN_REF)
        v = read(p, replies(judge_server, p)[0])
        assert (v.winner, v.score1, v.score2) == ("2", 3, 5)


def test_an_omitted_temperature_is_the_specs_default(judge_server: LocalJudgeServer) -> None:
    """The engine gets 0.2 when the request has no temperature: pick a seed whose draw moves the score at 0.2."""
    assert DEFAULT_TEMPERATURE == 0.2
    assert parse_chat_body(body(**MID)).params.temperature == 0.2
    seed = next(s for s in range(5000) if expected(body(seed=s, **MID), 0) != 3)
    omitted = replies(judge_server, body(seed=seed, **MID))
    assert read(body(**MID), omitted[0]).score == expected(body(seed=seed, **MID), 0) != 3
    assert omitted == replies(judge_server, body(seed=seed, temperature=0.2, **MID))
    assert omitted != replies(judge_server, body(seed=seed, temperature=0, **MID))


# --------------------------------------------------------------------------- reproducible, independent


def test_same_request_and_seed_same_reply(judge_server: LocalJudgeServer, make_judge_server: Any) -> None:
    b = body(temperature=1.0, seed=42, n=4, **MID)
    first = replies(judge_server, b)
    assert replies(judge_server, b) == first
    assert replies(make_judge_server(), b) == first  # another server (its own process state): the same


def test_a_request_without_seed_is_reproducible(judge_server: LocalJudgeServer, make_judge_server: Any) -> None:
    b = body(temperature=1.0, n=4, question=ZH_Q, answer=ZH_A, ref_answer=ZH_REF)
    first = replies(judge_server, b)
    assert replies(judge_server, b) == first == replies(make_judge_server(), b)


def test_different_seeds_are_independent_samples(judge_server: LocalJudgeServer) -> None:
    scores = [overall_scores(judge_server, body(temperature=1.0, seed=seed, **MID))[0] for seed in range(20)]
    assert len(set(scores)) >= 2
    assert scores == [expected(body(temperature=1.0, seed=seed, **MID), 0) for seed in range(20)]


def test_n_choices_are_independent_samples(judge_server: LocalJudgeServer) -> None:
    differing = 0
    for seed in range(5):
        scores = overall_scores(judge_server, body(temperature=1.0, seed=seed, n=4, **MID))
        assert scores == [expected(body(temperature=1.0, seed=seed, **MID), c) for c in range(4)]
        differing += len(set(scores)) > 1
    assert differing >= 1


@pytest.mark.parametrize("seed", [None, 7])
def test_choice_c_is_the_same_whatever_n_is(judge_server: LocalJudgeServer, seed: int | None) -> None:
    fields = {"question": ZH_Q, "answer": ZH_A}
    five = replies(judge_server, body(temperature=1.0, seed=seed, n=5, **fields))
    assert replies(judge_server, body(temperature=1.0, seed=seed, n=3, **fields)) == five[:3]
    assert replies(judge_server, body(temperature=1.0, seed=seed, **fields)) == five[:1]
    assert replies(judge_server, body(temperature=1.0, seed=seed, n=1, **fields)) == five[:1]


def test_spread_grows_with_temperature(judge_server: LocalJudgeServer) -> None:
    """The same draw, scaled by sigma(T): more scores move at 1.0 than at 0.2, never in the other direction."""
    offsets: dict[float, list[float]] = {}
    for t in (0.2, 0.7, 1.0):
        scores = [overall_scores(judge_server, body(temperature=t, seed=seed, **MID))[0] for seed in range(40)]
        offsets[t] = [score - 3 for score in scores if score is not None]
    share = {t: sum(o != 0 for o in offs) / len(offs) for t, offs in offsets.items()}
    assert share[0.2] < share[0.7] < share[1.0]
    assert share[0.2] <= 0.1 and share[1.0] >= 0.4
    for low, high in zip(offsets[0.2], offsets[1.0]):
        assert abs(low) <= abs(high) and low * high >= 0


@pytest.mark.parametrize("max_score", [5, 10])
def test_scores_stay_on_the_scale(judge_server: LocalJudgeServer, max_score: int) -> None:
    scale = {"max_score": max_score, "score_desc": DESC10} if max_score == 10 else {}
    top = {"question": EN_Q, "answer": EN_REF, "ref_answer": EN_REF, **scale}
    bottom = {"question": EN_Q, "answer": "the and of", **scale}  # no content word: the lowest score
    assert (s0_of(top), s0_of(bottom)) == (max_score, 1)
    seen: set[float] = set()
    for fields in (top, bottom, MID | scale):
        for json_object in (False, True):
            b = body(temperature=1.9, seed=3, n=12, json_object=json_object, **fields)
            for text in replies(judge_server, b):
                v = read(b, text)
                assert v.score is not None and 1 <= v.score <= max_score
                assert all(c.score is not None and 1 <= c.score <= max_score for c in v.criteria)
                seen.add(v.score)
    assert {1, max_score} <= seen


# --------------------------------------------------------------------------- the text shows the sampled score


def level(score: float, max_score: int) -> str:
    ratio = (score - 1) / (max_score - 1)
    return "good" if ratio >= 0.74 else "fair" if ratio >= 0.49 else "poor"


ACCURACY_NOREF = {"good": "is consistent with the question", "fair": "is related to the question, but",
                  "poor": "has little to do with the question"}


@pytest.mark.parametrize("zh", [True, False])
@pytest.mark.parametrize("json_object", [False, True])
def test_the_parser_reads_the_sampled_scores(judge_server: LocalJudgeServer, zh: bool, json_object: bool) -> None:
    fields = {"question": ZH_Q, "answer": ZH_A, "ref_answer": ZH_REF} if zh else \
        {"question": EN_Q, "answer": "Paris lies on the Seine.", "max_score": 10, "score_desc": DESC10}
    max_score = fields.get("max_score") or 5
    a = assess(fields["question"], fields["answer"], fields.get("ref_answer"))
    base = {"accuracy": a.accuracy, "relevance": a.relevance, "completeness": a.completeness, "clarity": a.clarity}
    moved = 0
    for seed in range(8):
        b = body(temperature=1.0, seed=seed, n=2, json_object=json_object, **fields)
        for choice, text in enumerate(replies(judge_server, b)):
            v = read(b, text)
            overall = expected(b, choice)
            offset = overall - s0_of(fields)
            moved += offset != 0
            assert v.score == overall
            for c in v.criteria:
                quality = CRITERIA_QUALITY[c.name or ""]
                c0 = to_score(base[quality] if quality else 1.0, max_score)
                assert c.score == max(1, min(max_score, c0 + offset)), (c, text)
                if c.name == "Accuracy":
                    assert ACCURACY_NOREF[level(c.score, max_score)] in (c.reason or ""), text
            if json_object:
                assert json.loads(text)["总分" if zh else "overall_score"] == str(overall)
            else:
                assert (f"综合评分为{overall}。" if zh else f"overall rating of {overall}.") in text
    assert moved >= 3


@pytest.mark.parametrize("zh", [True, False])
@pytest.mark.parametrize("json_object", [False, True])
def test_pairwise_winner_follows_the_sampled_scores(judge_server: LocalJudgeServer, zh: bool,
                                                    json_object: bool) -> None:
    q, better, worse, ref = (ZH_Q, ZH_REF, ZH_A, ZH_REF) if zh else (EN_Q, EN_REF, EN_A, EN_REF)
    winners: set[str | None] = set()
    for seed in range(15):
        for a1, a2 in ((better, worse), (worse, better)):  # both orders
            b = body("pairwise", temperature=1.0, seed=seed, json_object=json_object, question=q, answer1=a1,
                     answer2=a2, ref_answer=ref)
            text = replies(judge_server, b)[0]
            v = read(b, text)
            s1, s2 = expected(b, 0, 0), expected(b, 0, 1)
            assert (v.score1, v.score2) == (s1, s2)
            assert v.winner == ("1" if s1 > s2 else "2" if s2 > s1 else "tie"), text
            assert all(c.score is not None and c.score2 is not None for c in v.criteria)
            if v.winner == "tie" and not json_object:
                assert ("两个回复整体表现相当" if zh else "perform equally well") in text
            winners.add(v.winner if a1 == better else {"1": "2", "2": "1"}.get(v.winner or "", v.winner))
    assert "2" in winners or "tie" in winners  # the better answer did not win every sample


def test_custom_template_scores_are_sampled(judge_server: LocalJudgeServer) -> None:
    prose = "Please score the following answer on a scale of 1 to 10:\nQuestion: {q}\nAnswer: {a}"
    judge_call = parse_chat_body(body(**MID))
    pai_template = next(m["content"] for m in reversed(prompt_messages(judge_call)) if m["role"] == "user")
    scores = []
    for seed in range(10):
        b = custom_body(prose.format(q=EN_Q, a="Paris is the capital."), temperature=1.0, seed=seed)
        v = read(b, replies(judge_server, b)[0])
        call = parse_chat_body(b)
        s0 = to_score(assess(EN_Q, "Paris is the capital.").overall, 10)
        assert v.score == sampled_score(s0, 10, 1.0, choice_draws(call, 0)[0])
        assert f"I rate this answer as {int(v.score)}." in v.raw and f"scored {int(v.score)} based" in v.raw
        scores.append(v.score)
        # the PAI template (what another server's openai engine sends) is answered in its style, sampled alike
        b = custom_body(pai_template, temperature=1.0, seed=seed)
        text = replies(judge_server, b)[0]
        assert parse_reply(text, "single").score == sampled_score(3, 5, 1.0, choice_draws(parse_chat_body(b), 0)[0])
    assert len(set(scores)) >= 2


# --------------------------------------------------------------------------- batch lines


def test_a_batch_line_gets_the_online_reply(judge_server: LocalJudgeServer) -> None:
    bodies = [body(temperature=1.0, seed=5, n=3, **MID), body(temperature=0.7, n=2, question=ZH_Q, answer=ZH_A),
              body("pairwise", temperature=1.0, seed=9, json_object=True, question=EN_Q, answer1=EN_A,
                   answer2=EN_REF),
              custom_body("请按照1-5分打分:\n问题: " + ZH_Q + "\n回复: " + ZH_A, temperature=1.0, seed=1),
              body(**MID)]
    lines = [json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": b})
             for i, b in enumerate(bodies)]
    c = openai.OpenAI(api_key="unused", base_url=judge_server.url, max_retries=0)
    uploaded = c.files.create(file=("input.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch")
    batch = c.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    deadline = time.monotonic() + 30
    while batch.status not in ("Succeeded", "Failed", "Expired", "Cancelled", "completed", "failed"):
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)
        batch = c.batches.retrieve(batch.id)
    assert batch.status == "Succeeded" and batch.output_file_id
    output = [json.loads(line) for line in c.files.content(batch.output_file_id).text.splitlines() if line.strip()]
    by_id = {line["custom_id"]: line["response"]["body"] for line in output}
    for i, b in enumerate(bodies):
        texts = [choice["message"]["content"] for choice in by_id[f"req-{i}"]["choices"]]
        assert texts == replies(judge_server, b), i
    assert any(replies(judge_server, b) != replies(judge_server, {**b, "temperature": 0}) for b in bodies)  # sampled
