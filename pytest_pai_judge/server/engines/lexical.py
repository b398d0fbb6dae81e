"""The ``lexical`` engine: an offline stand-in for the PAI judge model that samples reproducibly.

It is NOT a judge of meaning. It scores an answer by the overlap of its character bigrams (CJK)
and words (other scripts) with the reference answer and with the question, so tests and CI can
run the whole judge workflow without a model or a network:

* an answer that matches ``ref_answer`` closely gets max_score (or max_score - 1);
* without ``ref_answer``, an answer sharing content with the question gets 4 of 5;
* an answer sharing nothing with question or reference gets 2, an empty one 1.

Replies copy the spec's reply styles exactly (``综合评分为[[N]]`` / ``overall score of the answer
is [[N]]``, ``[[回复1更好]]`` / ``[[Answer 1 is better]]``, the custom-template prose, and the
``json_object`` shape), in the language of the question.

It samples like a judge model does. The score above is the deterministic base s0; at ``temperature``
0 every reply is exactly that. Above 0 each choice draws its overall score as
``clamp(round_half_up(s0 + sigma(T) * z), 1, max_score)`` with one standard-normal ``z`` per answer
and ``sigma(T) = T`` (:func:`score_sigma`); the criteria scores move by the same offset (clamped),
with the reasons of their new level, and every place of the reply that shows a score shows the
sampled one. ``z`` comes from a ``random.Random`` seeded with a sha256 of the judge content (mode,
fields or custom messages, max_score, response format), the request's ``seed`` and the choice
index -- not ``n``, not the temperature -- so the same request with the same seed always gets the
same reply (without a seed too), choice c is the same whatever ``n`` is, and different seeds or
choices are independent samples. Measured by ``benchmarks/judge_variance.py`` (40 requests x 50
seeds, 2,800 overall scores per temperature; "moved": the score differs from the temperature-0 one;
"mid-scale": temperature-0 score neither 1 nor max_score):

====  =======  ===================  ==================  ==========================
T     moved    mean abs difference  moved, mid-scale    normal model, mid-scale
====  =======  ===================  ==================  ==========================
0     0%       0.00                 0%                  0%
0.2   1.3%     0.01                 1.4%                1.2%
0.7   43.8%    0.46                 46.2%               47.5%
1.0   57.4%    0.66                 60.8%               61.7%
====  =======  ===================  ==================  ==========================

``seed`` and the choice index also vary the wording (the summary's opener).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
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


def to_score(quality: float, max_score: int) -> int:
    """A quality in [0, 1] on the 1..max_score scale: the deterministic score s0 of an assessment."""
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


# --------------------------------------------------------------------------- sampling

SIGMA_PER_TEMPERATURE = 1.0
"""The noise of a sampled score, in score points per unit of temperature (see :func:`score_sigma`)."""


def score_sigma(temperature: float) -> float:
    """sigma(T): the standard deviation, in score points, of the noise on an overall score at temperature T.

    ``SIGMA_PER_TEMPERATURE * T`` = T. A sample differs from s0 when ``|sigma * z| >= 0.5``, i.e. with
    probability ``2 * (1 - Phi(0.5 / sigma))``: about 1% at 0.2 (the spec's default temperature),
    47% at 0.7 and 62% at 1.0, less next to the scale's ends (the clamp keeps 1 and max_score).
    """
    return SIGMA_PER_TEMPERATURE * temperature


def clamp_score(score: int, max_score: int) -> int:
    """``score`` kept on the scale [1, max_score]."""
    return max(1, min(max_score, score))


def sampled_score(s0: int, max_score: int, temperature: float, draw: float) -> int:
    """The overall score a choice shows: ``clamp(round_half_up(s0 + sigma(T) * draw), 1, max_score)``.

    ``draw`` is the choice's standard-normal draw for the answer (:func:`choice_draws`); at T = 0 it is s0.
    """
    return clamp_score(math.floor(s0 + score_sigma(temperature) * draw + 0.5), max_score)


@dataclass(frozen=True)
class Sampling:
    """How one choice departs from the deterministic scores: its temperature and one draw per answer."""

    temperature: float = 0.0
    draws: tuple[float, float] = (0.0, 0.0)
    """Standard-normal draws: the (first) answer's, and for pairwise answer 2's."""

    def score(self, s0: int, max_score: int, answer: int = 0) -> int:
        """The sampled overall score of answer ``answer`` (0 or 1) whose deterministic score is ``s0``."""
        return sampled_score(s0, max_score, self.temperature, self.draws[answer])


DETERMINISTIC = Sampling()
"""Temperature 0: every score is s0."""


def judge_content(call: ChatCall) -> dict[str, object]:
    """What a choice's randomness depends on besides seed and choice: mode, fields or custom messages,
    max_score and response format (not ``n``, not the temperature, not the other generation parameters)."""
    custom = call.kind == "custom"
    max_score = scale_of("\n".join(m["content"] for m in call.messages)) if custom else call.fields.get("max_score")
    return {"mode": call.kind, "fields": None if custom else call.fields, "messages": call.messages if custom else None,
            "max_score": max_score, "response_format": call.params.response_format}


def choice_draws(call: ChatCall, choice: int) -> tuple[float, float]:
    """The two standard-normal draws of choice ``choice`` of ``call``, from a ``random.Random`` seeded with
    the sha256 of the judge content, the request's ``seed`` (None if absent) and the choice index."""
    key = json.dumps([judge_content(call), call.params.seed, choice], sort_keys=True, ensure_ascii=False,
                     separators=(",", ":"), default=str)
    rng = random.Random(int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest(), "big"))
    return rng.normalvariate(0.0, 1.0), rng.normalvariate(0.0, 1.0)


def choice_sampling(call: ChatCall, choice: int) -> Sampling:
    """The sampling of choice ``choice`` of ``call`` at the request's temperature."""
    return Sampling(call.params.temperature, choice_draws(call, choice))


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


def _criteria(assessments: list[Assessment], max_score: int, offsets: tuple[int, ...]) -> list[_Criterion]:
    """Each criterion's score per answer, moved by that answer's offset (sampled overall - s0), with the
    reasons of the moved score's level."""
    out = []
    for zh, en in _CRITERIA:
        scores, rz, re_ = [], [], []
        for a, offset in zip(assessments, offsets):
            quality = {"准确性": a.accuracy, "相关性": a.relevance, "完整性": a.completeness,
                       "清晰度和结构": a.clarity, "无害性": 1.0}[zh]
            score = clamp_score(to_score(quality, max_score) + offset, max_score)
            level = _level(score, max_score)
            key = level if (zh != "准确性" or a.has_ref) else f"{level}_noref"
            scores.append(score)
            rz.append(_ZH_REASONS[zh][key].format(ex=a.excerpt))
            re_.append(_EN_REASONS[en][key].format(ex=a.excerpt.replace('"', "'")))
        out.append(_Criterion(zh, en, tuple(scores), tuple(rz), tuple(re_)))
    return out


# --------------------------------------------------------------------------- reply builders


def single_reply(question: str, answer: str, ref_answer: str | None, max_score: int, *, zh: bool,
                 json_object: bool = False, choice: int = 0, seed: int | None = None,
                 sampling: Sampling = DETERMINISTIC) -> str:
    """The single-mode reply: overall ``[[N]]`` first, then one ``[[n]]`` per criterion (scores sampled)."""
    a = assess(question, answer, ref_answer)
    s0 = to_score(a.overall, max_score)
    overall = sampling.score(s0, max_score)
    crits = _criteria([a], max_score, (overall - s0,))
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
                   json_object: bool = False, choice: int = 0, seed: int | None = None,
                   sampling: Sampling = DETERMINISTIC) -> str:
    """The pairwise reply: the winner in ``[[...]]``, then both overall scores, then per-criterion marks.

    Each answer's score is sampled with its own draw; the winner follows the sampled scores."""
    a1, a2 = assess(question, answer1, ref_answer), assess(question, answer2, ref_answer)
    base1, base2 = to_score(a1.overall, max_score), to_score(a2.overall, max_score)
    s1, s2 = sampling.score(base1, max_score, 0), sampling.score(base2, max_score, 1)
    crits = _criteria([a1, a2], max_score, (s1 - base1, s2 - base2))
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
                 seed: int | None = None, sampling: Sampling = DETERMINISTIC) -> str:
    """Reply to a custom-template conversation.

    A prompt built from the PAI templates (``[用户指令]: ...``, or their English renderings'
    ``[User instruction]: ...``, e.g. from another server's ``openai`` engine) is answered in the template's own style; any other prompt in the spec's
    custom-template prose, on the scale the prompt names (default 1-5).
    """
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    everything = "\n".join(m["content"] for m in messages)
    max_score = scale_of(everything)
    for opening, tags in (("[数据开始]", ("用户指令", "参考答案", "回复1", "回复2", "回复")),
                          ("[Data start]", ("User instruction", "Reference answer", "Answer 1", "Answer 2", "Answer"))):
        if opening not in user:
            continue
        question, ref, answer1, answer2, answer = (_template_field(tag, user) for tag in tags)
        zh = is_chinese(question or "")
        if question and answer1 and answer2:
            return pairwise_reply(question, answer1, answer2, ref, max_score, zh=zh, json_object=json_object,
                                  choice=choice, seed=seed, sampling=sampling)
        if question and answer:
            return single_reply(question, answer, ref, max_score, zh=zh, json_object=json_object, choice=choice,
                                seed=seed, sampling=sampling)
    question, ref, answer = _field(_QUESTION, user), _field(_REF, user), _field(_ANSWER, user)
    zh = is_chinese(question or user)
    if question and answer:
        a = assess(question, answer, ref)
        quality = a.overall
        excerpt = a.excerpt
    else:
        quality, excerpt = 0.5, _excerpt(user)
    score = sampling.score(to_score(quality, max_score), max_score)
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
    """Offline judge replies from lexical overlap, sampled at the request's temperature (see the module
    docstring); the same request (and seed) always gets the same reply."""

    name = "lexical"
    blocking = True  # pure CPU work: the server runs reply_blocking on its worker thread

    async def reply(self, call: ChatCall, *, choice: int) -> str:
        return self.reply_blocking(call, choice=choice)

    def reply_blocking(self, call: ChatCall, *, choice: int) -> str:
        p = call.params
        json_object = p.response_format == "json_object"
        sampling = choice_sampling(call, choice)
        if call.kind == "custom":
            return custom_reply(call.messages, json_object=json_object, choice=choice, seed=p.seed, sampling=sampling)
        f = call.fields
        zh = is_chinese(f["question"])
        if call.kind == "single":
            return single_reply(f["question"], f["answer"], f.get("ref_answer"), f["max_score"], zh=zh,
                                json_object=json_object, choice=choice, seed=p.seed, sampling=sampling)
        return pairwise_reply(f["question"], f["answer1"], f["answer2"], f.get("ref_answer"), f["max_score"], zh=zh,
                              json_object=json_object, choice=choice, seed=p.seed, sampling=sampling)
