"""Read a PAI judge reply into a :class:`Verdict`, or refuse to (:class:`UnreadableVerdict`).

A judge test must never pass on a guessed verdict, so the parser reads only what the judge
stated unambiguously and raises :class:`UnreadableVerdict` (showing the raw text) otherwise.

Normalisation (on a copy; ``Verdict.raw`` keeps the judge's text untouched)
  * full-width ASCII forms (``［［ ］］ ： ０-９`` ...) become ASCII, ideographic space/NBSP a
    space, other Unicode decimal digits ASCII digits; zero-width and bidi characters are
    dropped; CR/CRLF become LF. ``【】`` stay as they are: they are not score brackets.
  * A *mark* is ``[[n]]`` (integer or decimal, optional sign, optional ``/max`` or ``分``)
    or ``[[N/A]]``. Single brackets (``[3]``) are never read: they are usually citations.
  * Every score read must lie in ``1..max_score``; anything else is unreadable (never
    clamped). A ``n/m`` score on another scale (m != max_score) is unreadable too.

single (the spec puts the overall score first, then one mark per criterion)
  1. JSON (``json_mode``, a reply starting with ``{`` or a ```` ```json ```` fence): see below.
  2. Overall anchors: "overall score/rating (of the answer) (is) [[n]]", "final/total score",
     "Rating: [[n]]" (MT-Bench; not on a numbered line), "综合评分为[[n]]" (also 总分,
     总体/整体评分, 最终得分 ...), and the same phrases before a bare number ("overall rating
     of 2", "综合评分为3"). All anchors must agree; two different values are unreadable.
  3. No anchor: the first mark is the overall score only if it stands before the first
     numbered line ("1. ...") and no other mark before that line disagrees with it (with no
     numbered line at all, every mark must agree). Otherwise unreadable: with only criterion
     marks there is no overall score to read.
  4. Criteria: the remaining marks in order; name and reason from the line's
     "1. Accuracy: reason [[n]]" / "1. 准确性:理由[[n]]" prefix; ``[[N/A]]`` gives ``None``.
  5. A reply carrying a pairwise winner marker ("[[回复1更好]]", "[[A]]" ...) or per-answer
     overall scores is unreadable in single mode (wrong mode, not a score).

pairwise
  * Winner from bracketed markers: "[[回复1更好]]", "[[回复2更好]]", ties ("[[两个回复一样好]]",
    "[[两个回复同样好]]", "[[平局]]", "[[the two answers as equivalent]]"), "[[Answer 1 is
    better]]", MT-Bench "[[A]]" / "[[B]]" / "[[C]]" (C = tie). Markers that disagree are
    unreadable.
  * Overall scores: "回复1的综合评分为[[4]]", "The overall score of Answer 1 is [[4]]",
    "Answer 1's overall score is [[4]]" (bare numbers too); repeats must agree.
  * No winner marker but both overall scores: the higher score wins, equal is a tie.
  * A winner marker naming the lower-scored answer contradicts the reply's own scores. The verdict
    words win (they are the judge's explicit conclusion, the scores its working) and the
    disagreement is kept in ``Verdict.contradiction`` so reports show it; a tie marker with
    unequal scores is recorded the same way.
  * Criteria (best effort, one per line): "[[Rating for Answer 1: 5]] [[Rating for Answer 2:
    N/A]]", or bare marks attributed to the nearest preceding "回复1"/"Answer 2"/"两个回复".

custom (free-form templates; the score is read from prose)
  * Signals: every single-mode anchor plus "I rate this answer as 3", "give it a 4", "scored
    3", "score: 3", "打3分", "评分为3", "评为3分", "得分为3", "3/5", "3 out of 5" (standalone
    fractions only when the denominator is ``max_score``), and a bare number as the whole reply or
    its first line ("4", "4分", "4.", "**4**", "4/10" with ``max_score=10``): small models answer
    the spec's custom samples that way. All signals must agree (a bare "4" then "I rate it 3" is
    unreadable).
  * No signal: the single-mode mark rule (e.g. a lone "[[3]]"). A mark-derived score that
    disagrees with a prose signal is unreadable.

JSON (``response_format=json_object``; fences and text around the object are tolerated)
  * Overall: ``总分``/``综合评分``/``分数``/``评分``/``得分``/``overall_score``/``score``/
    ``total``/``rating`` ... (string or number; several must agree). Criteria: every nested
    object with ``分数``/``score``/``rating`` (+ ``理由``/``reason``), or a ``criteria`` list.
    Top-level ``理由``/``reason`` is the reasoning text.
  * Pairwise: ``winner``/``better``/``胜者``/``结论`` ... ("1", "2", "tie", "回复1", "A" ...),
    scores from ``score1``/``answer1_score``/``回复1总分``/``{"回复1": {"总分": 4}}`` or
    ``{"总分": {"回复1": 4, "回复2": 2}}``; same winner rules as text.
  * JSON that fails to load falls back to the text rules.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, fields
from typing import Any, Literal

__all__ = ["CriterionScore", "Verdict", "UnreadableVerdict", "parse_reply", "strip_control", "normalize_text"]

Mode = Literal["single", "pairwise", "custom"]
Winner = Literal["1", "2", "tie"]

REASONS_MAX_CHARS = 4000
RAW_SHOWN_CHARS = 2000


# --------------------------------------------------------------------------- data


PARSER_VERSION = 2
"""Bump whenever parsing changes: cached parse memos of an older version are ignored and the stored raw
replies are read again, so a parser fix needs no new judge calls."""


@dataclass(frozen=True, slots=True)
class CriterionScore:
    """One criterion line of the judge's reply; ``score`` is None for N/A."""

    name: str | None
    score: float | None
    reason: str | None
    score2: float | None = None
    """Pairwise: the second answer's score for this criterion."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the judge said, read safely. ``raw`` keeps the reply so it can be re-parsed."""

    mode: Mode
    score: float | None
    max_score: int
    criteria: tuple[CriterionScore, ...]
    winner: Winner | None
    score1: float | None
    score2: float | None
    reasons: str
    raw: str
    model: str | None = None
    usage: dict | None = None
    cached: bool = False
    latency_s: float | None = None
    samples: tuple[float, ...] = ()
    """Every sample's score when this verdict stands for several samples (``samples=K``); ``score`` is their median."""
    contradiction: str | None = None
    """Pairwise: how the winner marker and the per-answer overall scores disagree (the marker was taken)."""

    @property
    def normalized(self) -> float | None:
        """``score / max_score`` (0..1], so thresholds survive a change of scale."""
        if self.score is None or not self.max_score:
            return None
        return self.score / self.max_score

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (criteria as a list of dicts); inverse of :meth:`from_dict`."""
        # Built by hand: dataclasses.asdict deep-copies recursively and costs ~0.1 ms per verdict.
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["usage"] = dict(self.usage) if self.usage is not None else None
        data["criteria"] = [{"name": c.name, "score": c.score, "reason": c.reason, "score2": c.score2}
                            for c in self.criteria]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        """Rebuild a verdict from :meth:`to_dict` output (missing optional keys default)."""
        criteria = tuple(
            CriterionScore(name=c.get("name"), score=c.get("score"), reason=c.get("reason"), score2=c.get("score2"))
            for c in data.get("criteria") or ()
        )
        return cls(
            mode=data["mode"],
            score=data.get("score"),
            max_score=int(data.get("max_score", 5)),
            criteria=criteria,
            winner=data.get("winner"),
            score1=data.get("score1"),
            score2=data.get("score2"),
            reasons=data.get("reasons", ""),
            raw=data.get("raw", ""),
            model=data.get("model"),
            usage=data.get("usage"),
            cached=bool(data.get("cached", False)),
            latency_s=data.get("latency_s"),
            samples=tuple(data.get("samples") or ()),
            contradiction=data.get("contradiction"),
        )


class UnreadableVerdict(Exception):
    """The judge replied, but no verdict can be read safely. Never a pass.

    The message shows the raw reply (control characters stripped, trimmed to
    ``RAW_SHOWN_CHARS`` with a note) so the failure can be diagnosed from the test report.
    """

    def __init__(self, reason: str, raw: str, mode: str) -> None:
        self.reason = reason
        self.raw = raw
        self.mode = mode
        super().__init__(self._message())

    def _message(self) -> str:
        shown = strip_control(self.raw or "")
        if not shown.strip():
            body = "(empty reply)"
            note = ""
        elif len(shown) > RAW_SHOWN_CHARS:
            body = shown[:RAW_SHOWN_CHARS]
            note = f" (trimmed to the first {RAW_SHOWN_CHARS} of {len(shown)} characters)"
        else:
            body = shown
            note = ""
        return (f"unreadable {self.mode} verdict: {self.reason}\n"
                f"--- judge reply{note} ---\n{body}\n--- end of judge reply ---")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (xdist, multiprocessing)
        return (type(self), (self.reason, self.raw, self.mode))


class _Bad(Exception):
    """Internal: why a reply is unreadable (turned into UnreadableVerdict with the raw text)."""


# --------------------------------------------------------------------------- text hygiene

_TRANSLATE: dict[int, int | None] = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_TRANSLATE.update({0x3000: 0x20, 0xA0: 0x20, 0x202F: 0x20, 0xFE55: ord(":"), 0x2236: ord(":")})
_TRANSLATE.update(dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u200e\u200f"
                                     "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"), None))
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")


def normalize_text(text: str) -> str:
    """Fold full-width forms and foreign digits to ASCII; drop zero-width, bidi and ANSI codes."""
    if text.isascii() and "\r" not in text and "\x1b" not in text:
        return text  # nothing to fold (every _TRANSLATE key is beyond ASCII): no second copy of the reply
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_TRANSLATE)
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if not text.isascii():
        text = _OTHER_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group(), 0)), text)
    return text


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def strip_control(text: str) -> str:
    """Remove ANSI escapes, control and bidi characters (keeping newlines and tabs).

    Judge text goes into terminal output, JUnit XML and HTML reports; escape sequences or
    bidi overrides in it could garble or disguise what a report shows.
    """
    text = _ANSI.sub("", text.replace("\r\n", "\n"))
    return _CONTROL.sub("", text.replace("\r", "\n"))


# --------------------------------------------------------------------------- patterns

_NUM = r"([-+]?[0-9]+(?:\.[0-9]+)?)"
_NA = r"n\s*/\s*a|n\.a\.?|不适用|无"
_TAIL = r"(?:\s*(?:/|out\s+of|分之)\s*([0-9]+))?(?![0-9]|\.[0-9]|\s*/\s*[0-9])"
_MARK = re.compile(r"\[\[\s*(?:" + _NUM + r"\s*(?:分|points?|pts?)?\s*(?:/\s*([0-9]+))?|(" + _NA + r"))\s*\]\]", re.I)
_BRACKET = re.compile(r"\[\[([^\[\]\n]{1,160})\]\]")

_EN_OVERALL = r"\b(?:overall|final|total)\s+(?:score|rating|grade|mark)"
_EN_TARGET = (r"(?:\s+(?:of|for)\s+(?:the|this|my|your)\s+"
              r"(?:answer|response|reply|assistant(?:'s|’s)?\s+(?:answer|response)))?")
_EN_VERB = (r"(?:\*\*|__)?(?:\s*(?:\b(?:is|was|would\s+be|will\s+be|should\s+be|of|as|at|comes\s+to)\b|[=:]))*"
            r"\s*(?:\*\*|__)?\s*")
_ZH_OVERALL = r"(?:综合|总体|整体|最终|总)\s*(?:评分|得分|分数|打分|分)"
_ZH_VERB = r"(?:\*\*)?(?:\s*(?:为|是|:|=))*\s*(?:\*\*)?\s*"
_MARK_SRC = _MARK.pattern

# (regex, generic) -- generic anchors are ignored on numbered/bulleted lines.
_SINGLE_ANCHORS: tuple[tuple[re.Pattern[str], bool], ...] = tuple(
    (re.compile(src, re.I), generic) for src, generic in (
        (_EN_OVERALL + _EN_TARGET + _EN_VERB + _MARK_SRC, False),
        (_ZH_OVERALL + _ZH_VERB + _MARK_SRC, False),
        (r"\boverall\s*(?:\*\*)?\s*:\s*(?:\*\*)?\s*" + _MARK_SRC, True),
        (r"\b(?:rating|score)\s*(?:\*\*)?\s*:\s*(?:\*\*)?\s*" + _MARK_SRC, True),
        (_EN_OVERALL + _EN_TARGET + _EN_VERB + _NUM + _TAIL, False),
        (_ZH_OVERALL + _ZH_VERB + _NUM + r"(?!\s*[分档]制)\s*分?" + _TAIL, False),
    )
)

_PROSE = tuple(re.compile(src, re.I) for src in (
    r"\b(?:rate|score|grade)\s+(?:this|the|it|that)(?:\s+(?:answer|response|reply))?\s+"
    r"(?:as\s+|at\s+|an?\s+|with\s+(?:an?\s+)?)?(?:(?:score|rating|grade)\s+of\s+)?" + _NUM + _TAIL,
    r"\bgive\s+(?:this|the|it|that)(?:\s+(?:answer|response|reply))?\s+(?:an?\s+)?"
    r"(?:(?:score|rating|grade)\s+of\s+)?" + _NUM + _TAIL,
    r"\b(?:scored|rated|graded)\s+(?:as\s+|at\s+|an?\s+)?" + _NUM + _TAIL,
    r"\b(?:score|rating|grade)\s*(?:\*\*)?\s*(?:[:=]|\bis\b|\bof\b)\s*(?:\*\*)?\s*" + _NUM + _TAIL,
    r"打\s*" + _NUM + r"\s*分",
    r"给(?:予|出)?了?\s*" + _NUM + r"\s*分",
    r"评(?:分|为|定为|分为)\s*(?:为|是|:)?\s*" + _NUM + r"(?!\s*[分档]制)" + _TAIL,
    r"得分\s*(?:为|是|:)\s*" + _NUM + r"(?!\s*[分档]制)" + _TAIL,
))
_BARE = re.compile(r"\s*(?:\*\*|__)?\s*(?:(?:score|rating|评分|得分)\s*[:=]\s*)?" + _NUM
                   + r"\s*(?:分|points?|pts?)?\s*(?:(?:/|out\s+of)\s*([0-9]+))?\s*(?:分)?\s*(?:\*\*|__)?\s*[.。!]?"
                   r"\s*(?:\*\*|__)?\s*", re.I)
"""A reply (or its first line) that is nothing but a score: "4", "4分", "4.", "**4**", "7/10", "7 out of 10"."""
_FRACTION = re.compile(r"(?<![0-9./])([0-9]+(?:\.[0-9]+)?)\s*(?:/|out\s+of)\s*([0-9]+)(?![0-9]|\.[0-9]|\s*/)", re.I)

_LABEL_WORD = r"(?:回复|回答|答案|answer|response|assistant)"
_PAIR_ANCHORS = tuple(re.compile(src, re.I) for src in (
    _EN_OVERALL + r"\s+(?:of|for)\s+" + _LABEL_WORD + r"\s*([12ab])\b" + _EN_VERB + _MARK_SRC,
    r"\b" + _LABEL_WORD + r"\s*([12ab])(?:'s|’s)?\s+(?:overall|final|total)\s+(?:score|rating|grade)" + _EN_VERB + _MARK_SRC,
    r"(?:回复|回答|答案)\s*([12])\s*(?:的)?\s*" + _ZH_OVERALL + _ZH_VERB + _MARK_SRC,
    _EN_OVERALL + r"\s+(?:of|for)\s+" + _LABEL_WORD + r"\s*([12ab])\b" + _EN_VERB + _NUM + _TAIL,
    r"\b" + _LABEL_WORD + r"\s*([12ab])(?:'s|’s)?\s+(?:overall|final|total)\s+(?:score|rating|grade)" + _EN_VERB + _NUM + _TAIL,
    r"(?:回复|回答|答案)\s*([12])\s*(?:的)?\s*" + _ZH_OVERALL + _ZH_VERB + _NUM + r"\s*分?" + _TAIL,
))
_PAIR_RATING = re.compile(
    r"\[\[\s*(?:(?:rating|score)\s+(?:for|of)\s+" + _LABEL_WORD + r"|(?:回复|回答|答案))\s*([12ab])\s*"
    r"(?:的)?\s*(?:评分|得分|分数)?\s*[:=为]?\s*(?:" + _NUM + r"(?:\s*/\s*([0-9]+))?|(" + _NA + r"))\s*\]\]", re.I)
_PAIR_LABEL = re.compile(r"(?:(?:回复|回答|答案|answer|response)\s*([12])(?![0-9])|assistant\s*([12ab])(?![0-9a-z]))|"
                         r"(两个回复|两个回答|两者|二者|\bboth\b)", re.I)

_NUMBERED_LINE = re.compile(r"^[ \t>#*_-]*(?:\d{1,2}\s*[.)、](?![0-9])|[-*•]\s)", re.M)
_CRITERION_LINE = re.compile(
    r"^[ \t>#]*(?:\d{1,2}\s*[.)、]|[-*•])\s*(?:\*\*|__)?\s*([^:\n\[\]]{1,40}?)\s*(?:\*\*|__)?\s*:\s*(?:\*\*|__)?\s*(.*)$")
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.S)

_TIE = re.compile(r"平局|一样好|同样好|一样差|同样差|都好|都不好|都很好|都差|并列|旗鼓相当|水平相当|两者相当|质量相当|"
                  r"不相上下|差不多|持平|难分|平手|\b(?:tie|tied|draw|equivalent|equally|equal|same|both|neither)\b",
                  re.I)
_BEATS = re.compile(r"比|优于|胜过|好于|强于|\b(?:better\s+than|outperforms?|beats?|superior\s+to|over)\b", re.I)
_WORSE = re.compile(r"更差|较差|不如|差于|\b(?:worse|inferior|loses?)\b", re.I)


# --------------------------------------------------------------------------- small helpers


def _value(num: str, den: str | None, max_score: int, what: str) -> float:
    """A score as float, or _Bad when it is not finite, on another scale or out of range."""
    value = float(num)
    if den is not None and int(den) != max_score:
        raise _Bad(f"{what} {num}/{den} is on a different scale than max_score={max_score}")
    if not math.isfinite(value) or not 1 <= value <= max_score:
        raise _Bad(f"{what} {num} is outside 1..{max_score}")
    return value


def _mark_value(m: re.Match[str], max_score: int, what: str, offset: int = 0) -> float | None:
    """Value of a _MARK-style match whose groups start at ``offset`` (None for N/A)."""
    num, den, na = m.group(offset + 1), m.group(offset + 2), m.group(offset + 3)
    if na is not None or num is None:
        return None
    return _value(num, den, max_score, what)


def _line_bounds(text: str, pos: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, len(text) if end < 0 else end


def _on_numbered_line(text: str, pos: int) -> bool:
    start, end = _line_bounds(text, pos)
    return _NUMBERED_LINE.match(text[start:end]) is not None


def _overlaps(span: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in spans)


def _agree(values: list[float], what: str) -> float | None:
    distinct = sorted(set(values))
    if len(distinct) > 1:
        raise _Bad(f"conflicting {what}: " + ", ".join(_fmt(v) for v in distinct))
    return distinct[0] if distinct else None


def _winner_and_scores(winners: list[Any], scores: dict[str, list[float]], *, missing: str, marker: str
                       ) -> tuple[Winner, float | None, float | None, str | None]:
    """The pairwise verdict from its winner marks and per-answer overall scores (text and JSON replies alike):
    the scores decide when no winner is marked; a marked winner stands even when the scores disagree, and
    the disagreement is returned as the fourth item (see the module doc: the verdict words win)."""
    score1 = _agree(scores["1"], "overall scores for answer 1")
    score2 = _agree(scores["2"], "overall scores for answer 2")
    winner: Winner | None = winners[0] if winners else None
    if winner is None:
        if score1 is None or score2 is None:
            raise _Bad(missing)
        return ("1" if score1 > score2 else "2" if score2 > score1 else "tie"), score1, score2, None
    contradiction = None
    if score1 is not None and score2 is not None:
        by_scores = "1" if score1 > score2 else "2" if score2 > score1 else "tie"
        if by_scores != winner and not (winner != "tie" and by_scores == "tie"):
            named = "a tie" if winner == "tie" else f"answer {winner}"
            contradiction = (f"{marker} names {named} but the overall scores are {_fmt(score1)} vs {_fmt(score2)} "
                             "(the verdict words are taken)")
    return winner, score1, score2, contradiction


def _fmt(value: float | None) -> str:
    if value is None:
        return "N/A"
    return str(int(value)) if float(value).is_integer() else str(value)


def _trim_reasons(text: str) -> str:
    text = strip_control(text).strip()
    if len(text) > REASONS_MAX_CHARS:
        return text[:REASONS_MAX_CHARS] + f"\n… [trimmed, {len(text)} characters in all]"
    return text


def _criterion_line(line: str) -> tuple[str | None, str | None]:
    """(name, reason) from "1. Accuracy: reason [[n]]"; marks removed from the reason."""
    m = _CRITERION_LINE.match(line)
    if m:
        name, rest = m.group(1).strip(" *_") or None, m.group(2)
    else:
        name, rest = None, re.sub(r"^[ \t>#]*(?:\d{1,2}\s*[.)、]|[-*•])\s*", "", line)
    reason = re.sub(r"\s+", " ", _BRACKET.sub(" ", rest)).strip()
    return name, reason or None


# --------------------------------------------------------------------------- winner


def classify_winner(label: Any) -> Winner | None:
    """Map a winner marker / JSON winner value to "1", "2", "tie", or None if it is not one."""
    if isinstance(label, bool) or label is None:
        return None
    if isinstance(label, (int, float)):
        winners: dict[float, Winner] = {1: "1", 2: "2", 0: "tie"}
        return winners.get(label) if float(label).is_integer() else None
    text = normalize_text(str(label)).strip().strip(".。!!").strip().lower()  # noqa: B005 - a set of end marks
    if text in ("a", "1", "answer a", "回复1"):
        return "1"
    if text in ("b", "2", "answer b", "回复2"):
        return "2"
    if text in ("c", "tie", "0"):
        return "tie"
    if _TIE.search(text):
        return "tie"
    labels: list[str] = []
    for m in re.finditer(r"(?:回复|回答|答案|answer|response|assistant|model|模型)\s*([12ab一二])(?![0-9a-z])", text):
        lab = {"a": "1", "b": "2", "一": "1", "二": "2"}.get(m.group(1), m.group(1))
        if not labels or labels[-1] != lab:
            labels.append(lab)
    distinct = list(dict.fromkeys(labels))
    worse = _WORSE.search(text) is not None
    if len(distinct) == 1:
        lab = distinct[0]
        return ("2" if lab == "1" else "1") if worse else lab  # type: ignore[return-value]
    if len(distinct) == 2 and (worse or _BEATS.search(text)):  # "X 比/better than/worse than Y"
        return (labels[1] if worse else labels[0])  # type: ignore[return-value]
    return None


def _winner_markers(text: str) -> list[tuple[Winner, tuple[int, int]]]:
    found: list[tuple[Winner, tuple[int, int]]] = []
    for m in _BRACKET.finditer(text):
        inner = m.group(1)
        if _MARK.fullmatch(m.group(0)) or _PAIR_RATING.fullmatch(m.group(0)):
            continue
        if re.fullmatch(r"\s*[-+]?[0-9.]+.*", inner):
            continue
        winner = classify_winner(inner)
        if winner is not None:
            found.append((winner, m.span()))
    return found


# --------------------------------------------------------------------------- text: single / custom


def _marks(text: str, max_score: int, exclude: list[tuple[int, int]]) -> list[tuple[int, int, float | None]]:
    out = []
    for m in _MARK.finditer(text):
        if _overlaps(m.span(), exclude):
            continue
        out.append((m.start(), m.end(), _mark_value(m, max_score, "score")))
    return out


def _single_anchors(text: str, max_score: int) -> tuple[list[float], list[tuple[int, int]]]:
    values: list[float] = []
    spans: list[tuple[int, int]] = []
    for rx, generic in _SINGLE_ANCHORS:
        for m in rx.finditer(text):
            if generic and _on_numbered_line(text, m.start()):
                continue
            if rx.pattern.endswith(_MARK_SRC):
                value = _mark_value(m, max_score, "overall score")
                if value is None:
                    raise _Bad("the overall score is N/A")
            else:
                value = _value(m.group(1), m.group(2), max_score, "overall score")
            values.append(value)
            spans.append(m.span())
    return values, spans


def _mark_rule(text: str, marks: list[tuple[int, int, float | None]]) -> tuple[float, int]:
    """Overall score from marks when no anchor exists: (value, end of overall marks)."""
    if not marks:
        raise _Bad("no score found: no overall-score phrase and no [[n]] mark")
    numbered = _NUMBERED_LINE.search(text)
    boundary = numbered.start() if numbered else len(text)
    head = [m for m in marks if m[0] < boundary]
    if not head:
        raise _Bad("only criterion marks found; no overall score before the numbered criteria")
    first = head[0][2]
    if first is None:
        raise _Bad("the first mark is N/A")
    if any(m[2] != first for m in head[1:]):
        what = "marks before the criteria" if numbered else "marks and no overall-score phrase"
        raise _Bad(f"ambiguous: different {what} (" + ", ".join(_fmt(m[2]) for m in head) + ")")
    return first, head[-1][1]


def _criteria_from_marks(text: str, marks: list[tuple[int, int, float | None]]) -> tuple[CriterionScore, ...]:
    out = []
    for start, _end, value in marks:
        ls, le = _line_bounds(text, start)
        name, reason = _criterion_line(text[ls:le])
        out.append(CriterionScore(name=name, score=value, reason=reason))
    return tuple(out)


def _parse_scored_text(text: str, mode: str, max_score: int) -> tuple[float, tuple[CriterionScore, ...]]:
    if mode == "single":
        if _winner_markers(text):
            raise _Bad("the reply names a pairwise winner; it is not a single-answer score")
        if any(rx.search(text) for rx in _PAIR_ANCHORS):
            raise _Bad("the reply gives per-answer overall scores; it is not a single-answer score")
    values, spans = _single_anchors(text, max_score)
    if mode == "custom":
        for rx in _PROSE:
            for m in rx.finditer(text):
                groups = m.groups()
                values.append(_value(groups[0], groups[1] if len(groups) > 1 else None, max_score, "score"))
                spans.append(m.span())
        first_line = text.strip().split("\n", 1)[0]
        bare = _BARE.fullmatch(first_line)
        if bare:
            values.append(_value(bare.group(1), bare.group(2), max_score, "score"))
            start = text.find(first_line)
            spans.append((start, start + len(first_line)))
        for m in _FRACTION.finditer(text):
            num, den = float(m.group(1)), int(m.group(2))
            if den == max_score and num <= den and not _overlaps(m.span(), spans):
                values.append(_value(m.group(1), m.group(2), max_score, "score"))
                spans.append(m.span())
    overall = _agree(values, "overall scores")
    marks = _marks(text, max_score, spans)
    if overall is not None:
        if mode == "custom" and marks:
            try:
                from_marks, _ = _mark_rule(text, marks)
            except _Bad:
                from_marks = None
            if from_marks is not None and from_marks != overall:
                raise _Bad(f"conflicting overall scores: {_fmt(overall)} in prose, [[{_fmt(from_marks)}]] marked")
        return overall, _criteria_from_marks(text, marks)
    overall, head_end = _mark_rule(text, marks)
    return overall, _criteria_from_marks(text, [m for m in marks if m[0] >= head_end])


# --------------------------------------------------------------------------- text: pairwise


def _parse_pairwise_text(text: str, max_score: int) -> tuple[Winner, float | None, float | None,
                                                            tuple[CriterionScore, ...], str | None]:
    markers = _winner_markers(text)
    winners = list(dict.fromkeys(w for w, _ in markers))
    if len(winners) > 1:
        raise _Bad("conflicting winner markers: " + ", ".join(winners))
    scores: dict[str, list[float]] = {"1": [], "2": []}
    spans: list[tuple[int, int]] = [s for _, s in markers]
    for rx in _PAIR_ANCHORS:
        for m in rx.finditer(text):
            lab = {"a": "1", "b": "2"}.get(m.group(1).lower(), m.group(1))
            if rx.pattern.endswith(_MARK_SRC):
                value = _mark_value(m, max_score, f"overall score of answer {lab}", offset=1)
                if value is None:
                    raise _Bad(f"the overall score of answer {lab} is N/A")
            else:
                value = _value(m.group(2), m.group(3), max_score, f"overall score of answer {lab}")
            scores[lab].append(value)
            spans.append(m.span())
    winner, score1, score2, contradiction = _winner_and_scores(
        winners, scores, missing="no winner marker (e.g. [[回复1更好]], [[A]]) and no overall score for both answers",
        marker="the winner marker")
    return winner, score1, score2, _pairwise_criteria(text, max_score, spans), contradiction


def _pairwise_criteria(text: str, max_score: int, exclude: list[tuple[int, int]]) -> tuple[CriterionScore, ...]:
    out = []
    pos = 0
    for line in text.split("\n"):
        line_start = pos
        pos += len(line) + 1
        found: dict[str, float | None] = {}
        hit = False
        rated = list(_PAIR_RATING.finditer(line))
        for m in rated:
            lab = {"a": "1", "b": "2"}.get(m.group(1).lower(), m.group(1))
            value = _mark_value(m, max_score, f"criterion score of answer {lab}", offset=1)
            found.setdefault(lab, value)
            hit = True
        prev = 0
        for m in _MARK.finditer(line):
            span = (line_start + m.start(), line_start + m.end())
            if _overlaps(span, exclude) or any(r.start() <= m.start() < r.end() for r in rated):
                prev = m.end()
                continue
            labels = list(_PAIR_LABEL.finditer(line, prev, m.start()))
            prev = m.end()
            if not labels:
                continue
            last = labels[-1]
            value = _mark_value(m, max_score, "criterion score")
            named = last.group(1) or last.group(2)
            targets = [{"a": "1", "b": "2"}.get(named.lower(), named)] if named else ["1", "2"]
            for lab in targets:
                found.setdefault(lab, value)
            hit = True
        if hit:
            name, reason = _criterion_line(line)
            out.append(CriterionScore(name=name, score=found.get("1"), reason=reason, score2=found.get("2")))
    return tuple(out)


# --------------------------------------------------------------------------- JSON

_OVERALL_KEYS = {"总分", "综合评分", "综合得分", "总体评分", "整体评分", "最终评分", "最终得分", "总评分", "总得分",
                 "overallscore", "overall", "overallrating", "total", "totalscore", "finalscore", "finalrating",
                 "score", "rating", "分数", "评分", "得分"}
_CRIT_SCORE_KEYS = {"分数", "评分", "得分", "score", "rating", "value", "打分"}
_REASON_KEYS = {"理由", "原因", "解释", "评价", "reason", "reasons", "reasoning", "explanation", "rationale",
                "comment", "comments", "justification", "analysis"}
_CRIT_LIST_KEYS = {"criteria", "scores", "details", "dimensions", "维度", "各维度", "评分细则", "细则", "标准"}
_NAME_KEYS = {"name", "criterion", "criteria", "dimension", "维度", "标准", "名称"}
_WINNER_KEYS = {"winner", "better", "betteranswer", "bettermodel", "胜者", "更好的回复", "更好回复", "获胜者", "胜出",
                "结论", "结果", "verdict", "result", "preferred", "preference", "choice", "judgment", "judgement"}
_ANSWER_KEY = re.compile(
    r"^(?:(?:回复|回答|答案|answer|response|assistant|model)([12ab])|(?:score|rating|总分|得分|分数|评分|综合评分|overallscore)([12ab])"
    r"|(?:overallscore|score|rating)(?:of|for)?(?:answer|response|assistant|model)([12ab]))"
    r"(?:的)?(?:总分|得分|分数|评分|综合评分|overallscore|score|rating|overall)?$")


def _key(name: Any) -> str:
    return re.sub(r"[\s_\-]+", "", normalize_text(str(name)).lower())


def _answer_label(key: str) -> str | None:
    m = _ANSWER_KEY.match(key)
    if not m:
        return None
    lab = (m.group(1) or m.group(2) or m.group(3)).lower()
    return {"a": "1", "b": "2"}.get(lab, lab)


def _json_score(value: Any, max_score: int, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Bad(f"{what} is a boolean ({value!r})")
    if isinstance(value, (int, float)):
        return _value(repr(float(value)) if isinstance(value, float) else str(value), None, max_score, what)
    if isinstance(value, str):
        text = normalize_text(value).strip()
        if re.fullmatch(r"(?:\[\[)?\s*(?:" + _NA + r"|none|null|-)?\s*(?:\]\])?", text, re.I):
            return None
        m = re.fullmatch(r"(?:\[\[)?\s*" + _NUM + r"\s*(?:分|points?|pts?)?\s*(?:(?:/|out\s+of)\s*([0-9]+))?\s*"
                         r"(?:分)?\s*(?:\]\])?", text, re.I)
        if m:
            return _value(m.group(1), m.group(2), max_score, what)
    raise _Bad(f"{what} is not a score: {value!r}")


def _reason_of(obj: dict[str, Any]) -> str | None:
    for k, v in obj.items():
        if _key(k) in _REASON_KEYS and isinstance(v, str) and v.strip():
            return v.strip()
    return None


def _score_in(obj: dict[str, Any], keys: set[str], max_score: int, what: str) -> tuple[bool, float | None]:
    """(found, value) for the first key of ``keys`` in ``obj``; several must agree."""
    values: list[float | None] = []
    for k, v in obj.items():
        if _key(k) in keys and not isinstance(v, (dict, list)):
            values.append(_json_score(v, max_score, what))
    if not values:
        return False, None
    numeric = [v for v in values if v is not None]
    return True, _agree(numeric, what) if numeric else None


def _json_criteria(obj: dict[str, Any], max_score: int, skip: set[str], pairwise: bool) -> list[CriterionScore]:
    out: list[CriterionScore] = []

    def one(name: str | None, item: dict[str, Any]) -> None:
        if pairwise:
            s: dict[str, float | None] = {}
            for k, v in item.items():
                lab = _answer_label(_key(k))
                if lab is None:
                    continue
                if isinstance(v, dict):
                    found, value = _score_in(v, _CRIT_SCORE_KEYS | _OVERALL_KEYS, max_score, f"criterion {name}")
                    if found:
                        s.setdefault(lab, value)
                elif not isinstance(v, list):
                    s.setdefault(lab, _json_score(v, max_score, f"criterion {name}"))
            if s:
                out.append(CriterionScore(name=name, score=s.get("1"), reason=_reason_of(item), score2=s.get("2")))
                return
        found, value = _score_in(item, _CRIT_SCORE_KEYS, max_score, f"criterion {name}")
        if found:
            out.append(CriterionScore(name=name, score=value, reason=_reason_of(item)))

    for k, v in obj.items():
        key = _key(k)
        if key in skip or key in _WINNER_KEYS or (pairwise and _answer_label(key)):
            continue
        if isinstance(v, dict):
            if key in _CRIT_LIST_KEYS and not any(_key(x) in _CRIT_SCORE_KEYS for x in v):
                for name, item in v.items():
                    if isinstance(item, dict):
                        one(str(name), item)
            else:
                one(str(k), v)
        elif isinstance(v, list) and key in _CRIT_LIST_KEYS:
            for item in v:
                if isinstance(item, dict):
                    name = next((str(x) for kk, x in item.items() if _key(kk) in _NAME_KEYS and isinstance(x, str)),
                                None)
                    one(name, item)
    return out


def _load_json(text: str, json_mode: bool) -> dict[str, Any] | None:
    stripped = text.strip()
    fence = _FENCE.search(stripped)
    if not (json_mode or stripped.startswith("{") or (fence and fence.group(1).strip().startswith("{"))):
        return None
    candidates = [fence.group(1)] if fence else []
    candidates.append(stripped)
    if "{" in stripped:
        candidates.append(stripped[stripped.find("{"): stripped.rfind("}") + 1])
    for candidate in candidates:
        try:
            obj = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _parse_json_scored(obj: dict[str, Any], max_score: int) -> tuple[float, tuple[CriterionScore, ...], str | None]:
    values: list[float] = []
    reason = _reason_of(obj)
    for k, v in obj.items():
        key = _key(k)
        if key not in _OVERALL_KEYS:
            continue
        if isinstance(v, dict):
            found, value = _score_in(v, _CRIT_SCORE_KEYS | _OVERALL_KEYS, max_score, f"overall score ({k})")
            if found and value is None:
                raise _Bad(f"the overall score ({k}) is N/A")
            if value is not None:
                values.append(value)
            reason = reason or _reason_of(v)
        elif not isinstance(v, list):
            value = _json_score(v, max_score, f"overall score ({k})")
            if value is None:
                raise _Bad(f"the overall score ({k}) is N/A")
            values.append(value)
    overall = _agree(values, "overall scores")
    if overall is None:
        raise _Bad("JSON reply without an overall score key (总分 / overall_score / score ...)")
    criteria = _json_criteria(obj, max_score, _OVERALL_KEYS | _REASON_KEYS, pairwise=False)
    return overall, tuple(criteria), reason


def _parse_json_pairwise(obj: dict[str, Any], max_score: int) -> tuple[
        Winner, float | None, float | None, tuple[CriterionScore, ...], str | None, str | None]:
    winners: list[Winner] = []
    for k, v in obj.items():
        if _key(k) in _WINNER_KEYS and not isinstance(v, (dict, list)):
            winner = classify_winner(v)
            if winner is None:
                raise _Bad(f"unrecognised winner value {k}={v!r}")
            winners.append(winner)
    if len(set(winners)) > 1:
        raise _Bad("conflicting winner values: " + ", ".join(dict.fromkeys(winners)))
    scores: dict[str, list[float]] = {"1": [], "2": []}

    def add(lab: str, value: float | None, what: str) -> None:
        if value is None:
            raise _Bad(f"the overall score of answer {lab} ({what}) is N/A")
        scores[lab].append(value)

    reason = _reason_of(obj)
    for k, v in obj.items():
        key = _key(k)
        lab = _answer_label(key)
        if lab is not None:
            if isinstance(v, dict):
                found, value = _score_in(v, _OVERALL_KEYS, max_score, f"overall score of answer {lab}")
                if found:
                    add(lab, value, k)
            elif not isinstance(v, list):
                add(lab, _json_score(v, max_score, f"overall score of answer {lab}"), k)
        elif key in _OVERALL_KEYS and isinstance(v, dict):
            for kk, vv in v.items():
                lab2 = _answer_label(_key(kk))
                if lab2 is not None and not isinstance(vv, (dict, list)):
                    add(lab2, _json_score(vv, max_score, f"overall score of answer {lab2}"), f"{k}.{kk}")
    winner, score1, score2, contradiction = _winner_and_scores(
        winners, scores, missing="JSON reply without a winner key and without both overall scores", marker="the winner")
    criteria = _json_criteria(obj, max_score, _OVERALL_KEYS | _REASON_KEYS, pairwise=True)
    return winner, score1, score2, tuple(criteria), reason, contradiction


def _json_reasons(obj: dict[str, Any], criteria: tuple[CriterionScore, ...], top: str | None) -> str:
    parts = [top] if top else []
    parts += [f"{c.name}: {c.reason}" if c.name else c.reason for c in criteria if c.reason]
    return "\n".join(parts) if parts else json.dumps(obj, ensure_ascii=False)


# --------------------------------------------------------------------------- entry point


def parse_reply(text: str, mode: str, *, max_score: int = 5, json_mode: bool = False) -> Verdict:
    """Read the judge's reply for ``mode`` ("single", "pairwise" or "custom").

    Raises :class:`UnreadableVerdict` (carrying the raw text) whenever the verdict is
    missing, ambiguous, contradictory or out of range -- see the module docstring.
    """
    __tracebackhide__ = True  # a test sees the raw reply in the message, not the parser's source
    raw = text
    if mode not in ("single", "pairwise", "custom"):
        raise ValueError(f"mode must be one of single, pairwise, custom; got {mode!r}")
    if isinstance(max_score, bool) or not isinstance(max_score, int) or max_score < 1:
        raise ValueError(f"max_score must be a positive integer; got {max_score!r}")
    if not isinstance(raw, str):
        raise UnreadableVerdict(f"the reply is not text ({type(raw).__name__})", repr(raw), mode)
    try:
        norm = normalize_text(raw)
        if not norm.strip():
            raise _Bad("empty reply")
        obj = _load_json(norm, json_mode)
        if obj is not None:
            if mode == "pairwise":
                winner, s1, s2, criteria, top, contradiction = _parse_json_pairwise(obj, max_score)
                return Verdict(mode="pairwise", score=None, max_score=max_score, criteria=criteria, winner=winner,
                               score1=s1, score2=s2, reasons=_trim_reasons(_json_reasons(obj, criteria, top)), raw=raw,
                               contradiction=contradiction)
            score, criteria, top = _parse_json_scored(obj, max_score)
            return Verdict(mode=mode, score=score, max_score=max_score, criteria=criteria,  # type: ignore[arg-type]
                           winner=None, score1=None, score2=None,
                           reasons=_trim_reasons(_json_reasons(obj, criteria, top)), raw=raw)
        if mode == "pairwise":
            winner, s1, s2, criteria, contradiction = _parse_pairwise_text(norm, max_score)
            return Verdict(mode="pairwise", score=None, max_score=max_score, criteria=criteria, winner=winner,
                           score1=s1, score2=s2, reasons=_trim_reasons(norm), raw=raw, contradiction=contradiction)
        score, criteria = _parse_scored_text(norm, mode, max_score)
        return Verdict(mode=mode, score=score, max_score=max_score, criteria=criteria,  # type: ignore[arg-type]
                       winner=None, score1=None, score2=None, reasons=_trim_reasons(norm), raw=raw)
    except _Bad as exc:
        raise UnreadableVerdict(str(exc), raw, mode) from None
