"""The ``lexical`` engine: a deterministic, offline stand-in for the PAI judge model.

It is NOT a judge of meaning. It scores an answer by the overlap of its character bigrams (CJK)
and words (other scripts) with the reference answer and with the question, so tests and CI can
run the whole judge workflow without a model or a network:

* an answer that matches ``ref_answer`` closely gets max_score (or max_score - 1);
* without ``ref_answer``, an answer sharing content with the question gets 4 of 5;
* an answer sharing nothing with question or reference gets 2, an empty one 1.

Replies copy the spec's reply styles exactly (``综合评分为[[N]]`` / ``overall score of the answer
is [[N]]``, ``[[回复1更好]]`` / ``[[Answer 1 is better]]``, the custom-template prose, and the
``json_object`` shape), in the language of the question. The same request always gets the same
reply; ``seed`` and the choice index only change the wording, never the scores.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from ...protocol import ChatCall
from ..scenes import is_chinese
from .base import JudgeEngine

_CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
_WORD = re.compile(r"[^\W_]+")
_STOPWORDS = frozenset(
    ["a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for", "with", "from", "as", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those", "there", "their", "they", "them", "he", "she", "his", "her", "we", "our", "you", "your", "i", "me", "my", "do", "does", "did", "not", "no", "so", "than", "then", "too", "very", "can", "could", "should", "would", "will", "shall", "may", "might", "must", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "about", "into", "over", "under", "again", "further", "once", "here", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "only", "own", "same", "just", "also", "please", "give"])


def _features(text: str) -> set[str]:
    """Character bigrams of CJK runs plus lower-cased content words of everything else."""
    text = text.lower()
    feats: set[str] = set()
    for run in _CJK_RUN.findall(text):
        feats.update([run] if len(run) == 1 else (run[i:i + 2] for i in range(len(run) - 1)))
    for word in _WORD.findall(_CJK_RUN.sub(" ", text)):
        if word in _STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        feats.add(word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word)
    return feats


def _excerpt(text: str, limit: int = 40) -> str:
    """A short quote of the answer that can never inject a ``[[`` score marker into the reply."""
    flat = " ".join(text.split()).replace("[[", "[").replace("]]", "]").replace("［［", "［").replace("］］", "］")
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _to_score(quality: float, max_score: int) -> int:
    return max(1, min(max_score, 1 + math.floor(quality * (max_score - 1) + 0.5)))


@dataclass
class Assessment:
    """How one answer relates to its question and reference answer; qualities are in [0, 1]."""

    overall: float
    accuracy: float
    relevance: float
    completeness: float
    clarity: float
    has_ref: bool
    excerpt: str


def assess(question: str, answer: str, ref_answer: str | None = None) -> Assessment:
    """Score an answer lexically; see the module docstring for the scale."""
    a, q = _features(answer), _features(question)
    r = _features(ref_answer) if ref_answer else set()
    excerpt = _excerpt(answer)
    if not a:
        return Assessment(0.0, 0.0, 0.0, 0.0, 0.0, bool(r), excerpt)
    shared_q = len(a & q)
    if shared_q >= 2 or (shared_q == 1 and len(q) <= 3):
        relevance = 0.75
    elif shared_q == 1:
        relevance = 0.5
    else:
        relevance = 0.25
    if r:
        hit = len(a & r)
        recall, precision = hit / len(r), hit / len(a)
        f1 = 2 * hit / (len(a) + len(r))
        if f1 >= 0.85 or (recall >= 0.9 and precision >= 0.5):
            overall = 1.0
        elif f1 >= 0.5 or recall >= 0.8:
            overall = 0.75
        elif f1 >= 0.25 or recall >= 0.4:
            overall = 0.5
        else:
            overall = 0.25
        relevance = max(relevance, overall)
        completeness = overall if len(a) >= 0.8 * len(r) else max(0.0, overall - 0.25)
    else:
        overall = relevance
        completeness = overall if len(a) >= 6 else max(0.25, overall - 0.25)
    clarity = min(1.0, overall + 0.25) if len(answer) <= 4000 else overall
    return Assessment(overall, overall, relevance, completeness, clarity, bool(r), excerpt)


# --------------------------------------------------------------------------- wording

_CRITERIA = (("准确性", "Accuracy"), ("相关性", "Relevance"), ("完整性", "Completeness"),
             ("清晰度和结构", "Clarity and structure"), ("无害性", "Harmlessness"))

_ZH_REASONS = {
    "准确性": {"good": "回复“{ex}”与参考答案高度一致,信息准确。", "good_noref": "回复“{ex}”与问题内容相符,未发现明显的事实错误。",
            "fair": "回复“{ex}”与参考答案部分一致,但存在遗漏或偏差。", "fair_noref": "回复“{ex}”与问题有一定关联,但准确性难以完全确认。",
            "poor": "回复“{ex}”与参考答案差异较大,准确性不足。", "poor_noref": "回复“{ex}”与问题的关联很弱,难以认为其准确。"},
    "相关性": {"good": "回复直接针对用户的问题,没有偏离主题。", "fair": "回复与问题有一定关联,但针对性不够强。",
            "poor": "回复与用户的问题几乎没有关联,偏离了主题。"},
    "完整性": {"good": "回复覆盖了问题的主要方面,内容较为完整。", "fair": "回复内容较为简略,未能完整回答问题的各个方面。",
            "poor": "回复缺少回答问题所需的关键内容。"},
    "清晰度和结构": {"good": "回复表述清晰,结构简洁明了。", "fair": "回复的表达基本清楚,但结构仍有提升空间。",
               "poor": "回复的表达不够清晰,影响了理解。"},
    "无害性": {"good": "回复不包含任何冒犯性或有害的内容。", "fair": "回复不包含任何冒犯性或有害的内容。",
            "poor": "回复不包含任何冒犯性或有害的内容。"},
}
_EN_REASONS = {
    "Accuracy": {"good": 'The answer "{ex}" closely matches the reference answer and is accurate.',
                 "good_noref": 'The answer "{ex}" is consistent with the question and shows no obvious factual error.',
                 "fair": 'The answer "{ex}" partly agrees with the reference answer but misses or distorts some points.',
                 "fair_noref": 'The answer "{ex}" is related to the question, but its accuracy cannot be fully confirmed.',
                 "poor": 'The answer "{ex}" differs substantially from the reference answer, which affects the accuracy.',
                 "poor_noref": 'The answer "{ex}" has little to do with the question, so it cannot be considered accurate.'},
    "Relevance": {"good": "The answer directly addresses the question. This meets the relevance criteria.",
                  "fair": "The answer is somewhat related to the question but not focused on it.",
                  "poor": "The answer barely relates to the question and drifts off topic."},
    "Completeness": {"good": "The answer covers the main aspects of the question.",
                     "fair": "The answer is brief and does not address all aspects of the question.",
                     "poor": "The answer lacks the key content needed to answer the question."},
    "Clarity and structure": {"good": "The answer is clear and concisely structured.",
                              "fair": "The answer is understandable, but its structure could be improved.",
                              "poor": "The answer is unclear, which affects its comprehensibility."},
    "Harmlessness": {"good": "The answer is appropriate and does not contain offensive content.",
                     "fair": "The answer is appropriate and does not contain offensive content.",
                     "poor": "The answer is appropriate and does not contain offensive content."},
}
_ZH_OPENERS = ("综上所述,", "总体来看,", "总的来说,", "综合以上各项,", "从整体上看,", "归纳而言,")
_EN_OPENERS = ("In summary, ", "Overall, ", "Taken together, ", "All things considered, ", "To sum up, ", "On balance, ")


def _level(score: int, max_score: int) -> str:
    ratio = (score - 1) / max(1, max_score - 1)
    return "good" if ratio >= 0.74 else "fair" if ratio >= 0.49 else "poor"


def _opener(openers: tuple[str, ...], choice: int, seed: int | None) -> str:
    """Wording that differs between the choices of one request and is fixed for a given seed."""
    return openers[(choice + (seed or 0)) % len(openers)]


def _suffix(choice: int, openers: tuple[str, ...]) -> str:
    return f" (#{choice + 1})" if choice >= len(openers) else ""


@dataclass
class _Criterion:
    zh: str
    en: str
    scores: tuple[int, ...]
    reasons_zh: tuple[str, ...]
    reasons_en: tuple[str, ...]


def _criteria(assessments: list[Assessment], max_score: int) -> list[_Criterion]:
    out = []
    for zh, en in _CRITERIA:
        scores, rz, re_ = [], [], []
        for a in assessments:
            quality = {"准确性": a.accuracy, "相关性": a.relevance, "完整性": a.completeness,
                       "清晰度和结构": a.clarity, "无害性": 1.0}[zh]
            score = _to_score(quality, max_score)
            level = _level(score, max_score)
            key = level if (zh != "准确性" or a.has_ref) else f"{level}_noref"
            scores.append(score)
            rz.append(_ZH_REASONS[zh][key].format(ex=a.excerpt))
            re_.append(_EN_REASONS[en][key].format(ex=a.excerpt.replace('"', "'")))
        out.append(_Criterion(zh, en, tuple(scores), tuple(rz), tuple(re_)))
    return out


# --------------------------------------------------------------------------- reply builders


def single_reply(question: str, answer: str, ref_answer: str | None, max_score: int, *, zh: bool,
                 json_object: bool = False, choice: int = 0, seed: int | None = None) -> str:
    """The single-mode reply: overall ``[[N]]`` first, then one ``[[n]]`` per criterion."""
    a = assess(question, answer, ref_answer)
    overall = _to_score(a.overall, max_score)
    crits = _criteria([a], max_score)
    if json_object:
        if zh:
            obj: dict[str, object] = {"总分": str(overall)}
            for c in crits:
                obj[c.zh] = {"分数": str(c.scores[0]), "理由": c.reasons_zh[0]}
        else:
            obj = {"overall_score": str(overall)}
            for c in crits:
                obj[c.en] = {"score": str(c.scores[0]), "reason": c.reasons_en[0]}
        last = next(reversed(obj))
        reason_key = "理由" if zh else "reason"
        obj[last][reason_key] = _opener(_ZH_OPENERS if zh else _EN_OPENERS, choice, seed) + obj[last][reason_key]  # type: ignore[index]
        return json.dumps(obj, ensure_ascii=False, indent=2)
    good = [c for c in crits if c.scores[0] > overall or (c.scores[0] == overall and _level(overall, max_score) == "good")]
    weak = [c for c in crits if c not in good]
    if zh:
        lines = [f"我认为该回复的综合评分为[[{overall}]],理由如下。"]
        if good:
            lines.append("当前回复的优点:")
            lines += [f"{i}. {c.zh}:{c.reasons_zh[0]}[[{c.scores[0]}]]" for i, c in enumerate(good, 1)]
        if weak:
            lines += ["", "当前回复的不足:"]
            lines += [f"{i}. {c.zh}:{c.reasons_zh[0]}[[{c.scores[0]}]]" for i, c in enumerate(weak, 1)]
        parts = []
        if good:
            parts.append("回复在" + "、".join(c.zh for c in good) + "方面表现较好")
        if weak:
            parts.append(("但" if good else "回复") + "在" + "、".join(c.zh for c in weak) + "方面存在不足")
        summary = _opener(_ZH_OPENERS, choice, seed) + ",".join(parts)
        lines += ["", f"{summary}。因此,综合评分为{overall}。{_suffix(choice, _ZH_OPENERS)}"]
        return "\n".join(lines) + "\n"
    lines = [f"I think the overall score of the answer is [[{overall}]] due to the following reasons:"]
    if good:
        lines.append("Advantages of the answer: ")
        lines += [f"{i}. {c.en}: {c.reasons_en[0]} [[{c.scores[0]}]]" for i, c in enumerate(good, 1)]
    if weak:
        lines += ["", "Shortcomings of the answer:"]
        lines += [f"{i}. {c.en}: {c.reasons_en[0]} [[{c.scores[0]}]]" for i, c in enumerate(weak, 1)]
    parts = []
    if good:
        parts.append("the answer performs well in " + ", ".join(c.en.lower() for c in good))
    if weak:
        parts.append(("but " if good else "the answer ") + "shows shortcomings in "
                     + ", ".join(c.en.lower() for c in weak))
    summary = _opener(_EN_OPENERS, choice, seed) + ", ".join(parts)
    lines += ["", f" {summary}, which results in an overall rating of {overall}.{_suffix(choice, _EN_OPENERS)}"]
    return "\n".join(lines)


def pairwise_reply(question: str, answer1: str, answer2: str, ref_answer: str | None, max_score: int, *, zh: bool,
                   json_object: bool = False, choice: int = 0, seed: int | None = None) -> str:
    """The pairwise reply: the winner in ``[[...]]``, then both overall scores, then per-criterion marks."""
    a1, a2 = assess(question, answer1, ref_answer), assess(question, answer2, ref_answer)
    s1, s2 = _to_score(a1.overall, max_score), _to_score(a2.overall, max_score)
    crits = _criteria([a1, a2], max_score)
    winner = "1" if s1 > s2 else "2" if s2 > s1 else "tie"
    opener = _opener(_ZH_OPENERS if zh else _EN_OPENERS, choice, seed)
    if json_object:
        if zh:
            obj: dict[str, object] = {"更好的回复": {"1": "回复1", "2": "回复2", "tie": "两个回复一样好"}[winner],
                                      "回复1总分": str(s1), "回复2总分": str(s2)}
            for c in crits:
                obj[c.zh] = {"回复1分数": str(c.scores[0]), "回复2分数": str(c.scores[1]),
                             "理由": f"回复1:{c.reasons_zh[0]}回复2:{c.reasons_zh[1]}"}
        else:
            # the English twin of 回复1总分 / 回复1分数, in keys the verdict parser reads (and scenes.json_layout asks for)
            obj = {"better_answer": {"1": "Answer 1", "2": "Answer 2", "tie": "tie"}[winner],
                   "answer1_overall_score": str(s1), "answer2_overall_score": str(s2)}
            for c in crits:
                obj[c.en] = {"answer1_score": str(c.scores[0]), "answer2_score": str(c.scores[1]),
                             "reason": f"Answer 1: {c.reasons_en[0]} Answer 2: {c.reasons_en[1]}"}
        last = next(reversed(obj))
        key = "理由" if zh else "reason"
        obj[last][key] = opener + obj[last][key]  # type: ignore[index]
        return json.dumps(obj, ensure_ascii=False, indent=2)
    if zh:
        verdict = {"1": "回复1更好", "2": "回复2更好", "tie": "两个回复一样好"}[winner]
        lines = [f"我认为[[{verdict}]],其中回复1的综合评分为[[{s1}]],回复2的综合评分为[[{s2}]],理由如下:"]
        for i, c in enumerate(crits, 1):
            lines.append(f"{i}. {c.zh}:回复1:{c.reasons_zh[0].rstrip('。')},因此得分为[[{c.scores[0]}]]。"
                         f"回复2:{c.reasons_zh[1].rstrip('。')},因此得分为[[{c.scores[1]}]]。")
        tail = {"1": "回复1整体表现更好,因此整体评分较高。", "2": "回复2整体表现更好,因此整体评分较高。",
                "tie": "两个回复整体表现相当,因此评分相同。"}[winner]
        lines += ["", f"{opener}{tail}{_suffix(choice, _ZH_OPENERS)}"]
        return "\n".join(lines) + "\n"
    verdict = {"1": "Answer 1 is better", "2": "Answer 2 is better", "tie": "the two answers as equivalent"}[winner]
    lines = [f"I regard [[{verdict}]]. The overall score of Answer 1 is [[{s1}]] and the overall score of Answer 2 "
             f"is [[{s2}]] for the following reasons: "]
    for i, c in enumerate(crits, 1):
        lines.append(f"{i}. {c.en}: Answer 1: {c.reasons_en[0]} Answer 2: {c.reasons_en[1]} "
                     f"[[Rating for Answer 1: {c.scores[0]}]] [[Rating for Answer 2: {c.scores[1]}]]")
    tails = {"1": "Answer 1 performs better across the criteria. I regard Answer 1 as better.",
             "2": "Answer 2 performs better across the criteria. I regard Answer 2 as better.",
             "tie": "the two answers perform equally well across the criteria. I regard the two answers as equivalent."}
    lines += ["", f" {opener}{tails[winner]}{_suffix(choice, _EN_OPENERS)}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- custom templates

_SCALE = re.compile(r"(?<![\d.])1\s*(?:-|~|～|–|—|到|至|to)\s*(\d{1,3})(?![\d.])", re.IGNORECASE)
_LEVELS = re.compile(r"评分采取(\d{1,3})档制")
_LABEL = r"(?:^|\n)\s*(?:\[)?(?:{names})(?:\])?\s*[::]\s*(.*)"
_QUESTION = re.compile(_LABEL.format(names="用户指令|问题|用户问题|指令|question|instruction|prompt"), re.IGNORECASE)
_ANSWER = re.compile(_LABEL.format(names="回复|回答|答案|answer|response"), re.IGNORECASE)
_REF = re.compile(_LABEL.format(names="参考答案|reference answer|reference"), re.IGNORECASE)


def scale_of(text: str, default: int = 5) -> int:
    """The top of the scoring scale a prompt asks for ("1-5", "1到10", "on a scale of 1 to 5")."""
    for pattern in (_LEVELS, _SCALE):
        for match in pattern.finditer(text):
            top = int(match.group(1))
            if 2 <= top <= 100:
                return top
    return default


def _template_field(name: str, text: str) -> str | None:
    """A ``[name]: value`` block of the PAI templates, which runs (possibly over lines) up to ``***``."""
    match = re.search(r"\[" + re.escape(name) + r"\]: (.*?)\n\*\*\*", text, re.S)
    return match.group(1).strip() or None if match else None


def _field(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    if not match:
        return None
    value = match.group(1).strip()
    return value or None


def custom_reply(messages: list[dict[str, str]], *, json_object: bool = False, choice: int = 0,
                 seed: int | None = None) -> str:
    """Reply to a custom-template conversation.

    A prompt built from the PAI templates (``[用户指令]: ...``, e.g. from another server's
    ``openai`` engine) is answered in the template's own style; any other prompt in the spec's
    custom-template prose, on the scale the prompt names (default 1-5).
    """
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    everything = "\n".join(m["content"] for m in messages)
    max_score = scale_of(everything)
    if "[数据开始]" in user:
        question, ref = _template_field("用户指令", user), _template_field("参考答案", user)
        answer1, answer2 = _template_field("回复1", user), _template_field("回复2", user)
        answer = _template_field("回复", user)
        zh = is_chinese(question or "")
        if question and answer1 and answer2:
            return pairwise_reply(question, answer1, answer2, ref, max_score, zh=zh, json_object=json_object,
                                  choice=choice, seed=seed)
        if question and answer:
            return single_reply(question, answer, ref, max_score, zh=zh, json_object=json_object, choice=choice,
                                seed=seed)
    question, ref, answer = _field(_QUESTION, user), _field(_REF, user), _field(_ANSWER, user)
    zh = is_chinese(question or user)
    if question and answer:
        a = assess(question, answer, ref)
        quality = a.overall
        excerpt = a.excerpt
    else:
        quality, excerpt = 0.5, _excerpt(user)
    score = _to_score(quality, max_score)
    level = _level(score, max_score)
    opener = _opener(_ZH_OPENERS if zh else _EN_OPENERS, choice, seed)
    if zh:
        why = {"good": "内容与问题高度相关,较好地满足了评分标准", "fair": "与问题相关,提供了一定的信息,但缺乏深入分析",
               "poor": "与问题的关联很弱,未能满足评分标准的要求"}[level]
        text = (f"根据提供的评分标准,我会给这个回答打{score}分。回复“{excerpt}”{why}。"
                f"{opener}根据标准,它达到了{score}分的标准。{_suffix(choice, _ZH_OPENERS)}")
        reason_key, score_key = "理由", "总分"
    else:
        why = {"good": "is highly relevant and meets the scoring criteria well",
               "fair": "is relevant and provides some insights, but lacks in-depth analysis",
               "poor": "has little to do with the question and does not meet the scoring criteria"}[level]
        text = (f"Based on the provided scoring criteria, I rate this answer as {score}. The answer \"{excerpt}\" "
                f"{why}. {opener}the answer is scored {score} based on the criteria.{_suffix(choice, _EN_OPENERS)}")
        reason_key, score_key = "reason", "overall_score"
    if json_object:
        return json.dumps({score_key: str(score), reason_key: text}, ensure_ascii=False, indent=2)
    return text


class LexicalEngine(JudgeEngine):
    """Offline, deterministic judge replies from lexical overlap (see the module docstring)."""

    name = "lexical"

    async def reply(self, call: ChatCall, *, choice: int) -> str:
        p = call.params
        json_object = p.response_format == "json_object"
        if call.kind == "custom":
            return custom_reply(call.messages, json_object=json_object, choice=choice, seed=p.seed)
        f = call.fields
        zh = is_chinese(f["question"])
        if call.kind == "single":
            return single_reply(f["question"], f["answer"], f.get("ref_answer"), f["max_score"], zh=zh,
                                json_object=json_object, choice=choice, seed=p.seed)
        return pairwise_reply(f["question"], f["answer1"], f["answer2"], f.get("ref_answer"), f["max_score"], zh=zh,
                              json_object=json_object, choice=choice, seed=p.seed)
