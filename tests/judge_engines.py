"""Judge engines for tests of the plugin, plugged into the real local server with ``engine=...``.

They make the server answer with the spec's exact reply texts, or with a position-biased judge,
so the plugin is tested over real HTTP against replies it did not write itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pytest_pai_judge.protocol import ChatCall
from pytest_pai_judge.server.engines import JudgeEngine

SPEC_REPLIES = {r["id"]: r for r in json.loads((Path(__file__).parent / "data" / "judge-replies.json")
                                               .read_text("utf-8"))["replies"]}


def _question(call: ChatCall) -> str:
    if call.kind == "custom":
        return next((m["content"] for m in reversed(call.messages) if m["role"] == "user"), "")
    return call.fields.get("question") or ""


class SpecReplyEngine(JudgeEngine):
    """Replies with the spec reply named by ``#reply=<id>`` in the question (judge-replies.json)."""

    name = "spec-replies"

    async def reply(self, call: ChatCall, *, choice: int) -> str:
        match = re.search(r"#reply=([\w-]+)", _question(call))
        if not match:
            return "I cannot judge this."
        return SPEC_REPLIES[match.group(1)]["text"]


class FirstAnswerEngine(JudgeEngine):
    """A position-biased judge: answer 1 is always better, whatever the answers are."""

    name = "first-answer"

    async def reply(self, call: ChatCall, *, choice: int) -> str:
        if call.kind == "pairwise":
            return ("I regard [[Answer 1 is better]]. The overall score of Answer 1 is [[4]] and the overall "
                    "score of Answer 2 is [[3]] for the following reasons:\n1. Accuracy: fine. "
                    "[[Rating for Answer 1: 4]] [[Rating for Answer 2: 3]]")
        return "I think the overall score of the answer is [[4]] due to the following reasons:\n1. Accuracy: ok. [[4]]"


class LengthLovingEngine(JudgeEngine):
    """A verbosity-biased judge: the longer the answer, the higher the score (one point per 80 characters)."""

    name = "length-loving"

    async def reply(self, call: ChatCall, *, choice: int) -> str:
        score = min(5, 1 + len(call.fields.get("answer") or "") // 80)
        return f"I think the overall score of the answer is [[{score}]] due to the following reasons:\n1. Length. [[{score}]]"
