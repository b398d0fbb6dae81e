"""Fault injection: make chosen requests fail the way the real service (or its gateway) fails.

A request matches a :class:`~.config.Fault` when its judge ``question`` (or, for custom
templates, its last user message) contains the fault's pattern; the first matching fault wins.
The same rules apply to online calls and batch lines, so a client's retry and error paths can be
tested end to end without a flaky network.
"""

from __future__ import annotations

from ..protocol import ChatCall
from .config import Fault
from .scenes import is_chinese

RETRY_AFTER_MS = 50
"""What a ``429`` fault asks the client to wait; small so retry tests stay fast."""

RETRY_HEADERS = {"retry-after-ms": str(RETRY_AFTER_MS), "retry-after": "1"}

UNREADABLE_ZH = "抱歉,我暂时无法对该回复给出评价,请稍后再试。"
UNREADABLE_EN = "Sorry, I am unable to evaluate this answer at the moment. Please try again later."


def fault_text(call: ChatCall) -> str:
    """The text fault patterns are matched against."""
    if call.kind != "custom":
        return str(call.fields.get("question") or "")
    return next((m["content"] for m in reversed(call.messages) if m["role"] == "user"), "")


def match_fault(faults: list[Fault], call: ChatCall) -> Fault | None:
    """The first configured fault whose pattern occurs in the request, if any."""
    if not faults:
        return None
    text = fault_text(call)
    return next((f for f in faults if f.pattern in text), None)


def unreadable_reply(call: ChatCall) -> str:
    """A 200 reply with no score marker at all (no ``[[n]]``, no digits)."""
    return UNREADABLE_ZH if is_chinese(fault_text(call)) else UNREADABLE_EN
