"""Request validation shared by the server and the client (protocol.py): what the spec's tables allow."""

from __future__ import annotations

import pytest

from pytest_pai_judge import protocol
from pytest_pai_judge.server.engines.base import prompt_messages


def judge_body(**fields: object) -> dict[str, object]:
    return {"model": "pai-judge", "messages": [{"role": "user", "content": [
        {"mode": "pairwise" if "answer1" in fields else "single", "type": "json", "json": fields}]}]}


def test_judge_texts_reach_the_prompt_as_sent() -> None:
    """A code answer's leading indentation is part of the answer; only a scene name is trimmed."""
    answer = "    def f():\n        pass\n"
    call = protocol.parse_chat_body(judge_body(question="  Indent this.", answer=answer, scene=" 代码生成修改与分析 "))
    assert call.fields["answer"] == answer and call.fields["question"] == "  Indent this."
    assert call.fields["scene"] == "代码生成修改与分析"
    prompt = prompt_messages(call)[-1]["content"]
    assert f"[Answer]: {answer}" in prompt  # an English question: the English rendering of the template


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
def test_a_blank_answer_is_still_absent(blank: str) -> None:
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_chat_body(judge_body(question="q", answer=blank))
    assert info.value.code == "AnswerError"


def test_stop_takes_strings_and_token_ids() -> None:
    params = protocol.parse_chat_body({**judge_body(question="q", answer="a"), "stop": ["END", 13, 0]}).params
    assert params.stop == ["END"] and params.stop_token_ids == [13, 0]
    for bad in ([True], [-1], [1.5], {"a": 1}):
        with pytest.raises(protocol.ProtocolError) as info:
            protocol.parse_chat_body({**judge_body(question="q", answer="a"), "stop": bad})
        assert (info.value.status, info.value.code, info.value.param) == (400, "InvalidParameter", "stop")


def test_temperature_range_is_half_open() -> None:
    ok = protocol.parse_chat_body({**judge_body(question="q", answer="a"), "temperature": 1.999})
    assert ok.params.temperature == 1.999
    with pytest.raises(protocol.ProtocolError, match=r"must be in \[0, 2\), got 2"):
        protocol.parse_chat_body({**judge_body(question="q", answer="a"), "temperature": 2})
