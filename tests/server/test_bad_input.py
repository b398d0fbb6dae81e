"""Bad input gets a documented 4xx, never a 5xx, and leaves the connection usable.

Which rows of the spec's error table (pai-judge-api-zh.txt) the cases get, and why:

* JSON nested too deep to load (100,000 levels, or more than ``MAX_JSON_DEPTH``): 402 InvalidBody,
  "json load request body error" -- the row for a body that cannot be loaded as JSON, which is
  what happens: the parser gives up.
* a lone UTF-16 surrogate (``"\\ud800"`` written as a JSON escape): the JSON loads, but the string
  is not Unicode text (no UTF-8 encoding exists for it), so no judge can read it. In the judge
  content (``messages``) it is 400 ContentError -- the spec's row for content the judge cannot use
  (402 InvalidBody would claim the JSON did not load, which is false); its ``param`` names the
  judge field (``question``, ``answer`` ...) or ``messages``. Anywhere else in the body it is 400
  InvalidParameter naming the top-level field, as for any other unusable parameter.
* a field over ``MAX_FIELD_CHARS``: the spec's 400 ContentError; the spec's fixed text stays the
  message's prefix and the rest names the field, its length and the limit.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from pytest_pai_judge import protocol
from pytest_pai_judge.server import LocalJudgeServer
from pytest_pai_judge.server.bodies import MAX_JSON_DEPTH

CONTENT_PREFIX = ('Content should be like: {"content": [{"type": "json", "mode": "[single / pairwise]", "json": '
                  '{"question": "<question>", "answer": "<answer>" ...}}]')


def judge_body(**fields: object) -> dict[str, object]:
    return {"model": "pai-judge", "messages": [{"role": "user", "content": [
        {"mode": "single", "type": "json", "json": fields}]}]}


def with_lone_surrogate(body: dict[str, object], marker: str = "SURROGATE") -> bytes:
    """``body`` as JSON with every ``marker`` replaced by the escape ``\\ud800`` (a lone high surrogate)."""
    return json.dumps(body).replace(marker, "\\ud800").encode()


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.fixture
def http(judge_server: LocalJudgeServer):
    with httpx.Client(base_url=judge_server.url, timeout=30) as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


# --------------------------------------------------------------------------- deep nesting


@pytest.mark.parametrize("levels", [100_000, 990, MAX_JSON_DEPTH + 1])
def test_deep_json_is_402_invalid_body_and_keeps_the_connection(http, levels):
    body = b'{"model": "pai-judge", "messages": ' + deep(levels) + b"}"
    error = assert_error(http.post("/chat/completions", content=body), 402, "InvalidBody")
    assert error["message"] == "json load request body error"
    assert http.get("/models").status_code == 200  # the same kept-alive connection still works


def test_deep_json_at_the_limit_is_judged_as_usual(http):
    # MAX_JSON_DEPTH levels in all: the body object, then an ignored field nested to the limit
    body = judge_body(question="What is 2+2?", answer="4")
    raw = json.dumps(body)[:-1] + ', "extra": ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1) + "}"
    assert http.post("/chat/completions", content=raw.encode()).status_code == 200


def test_deep_value_echoed_in_an_error_message_is_still_a_4xx(http):
    body = b'{"model": "pai-judge", "messages": [{"role": "user", "content": [{"type": "json", "mode": ' + \
        deep(MAX_JSON_DEPTH - 5) + b', "json": {"question": "q", "answer": "a"}}]}]}'
    assert_error(http.post("/chat/completions", content=body), 400, "ModeError")


def test_deep_json_creating_a_batch_is_402(http):
    error = assert_error(http.post("/batches", content=b'{"metadata": ' + deep(100_000) + b"}"), 402, "InvalidBody")
    assert error["message"] == "json load request body error"


# --------------------------------------------------------------------------- lone surrogates


@pytest.mark.parametrize("field", ["question", "answer", "ref_answer"])
def test_lone_surrogate_in_a_judge_field_is_400_content_error(http, field):
    fields = {"question": "What is 2+2?", "answer": "4", "ref_answer": "4"}
    fields[field] += "SURROGATE"
    error = assert_error(http.post("/chat/completions", content=with_lone_surrogate(judge_body(**fields))),
                         400, "ContentError")
    assert error["param"] == field
    assert str(error["message"]).startswith(CONTENT_PREFIX)
    assert "surrogate" in str(error["message"]) and field in str(error["message"])


def test_lone_surrogate_in_a_custom_message_is_400_content_error(http):
    body = {"model": "pai-judge", "messages": [{"role": "user", "content": "Rate this: SURROGATE"}]}
    error = assert_error(http.post("/chat/completions", content=with_lone_surrogate(body)), 400, "ContentError")
    assert error["param"] == "messages" and "messages[0].content" in str(error["message"])


@pytest.mark.parametrize("extra", [{"user": "SURROGATE"}, {"stop": ["SURROGATE"]}, {"metadata_SURROGATE": 1}])
def test_lone_surrogate_elsewhere_is_400_invalid_parameter(http, extra):
    body = {**judge_body(question="What is 2+2?", answer="4"), **extra}
    error = assert_error(http.post("/chat/completions", content=with_lone_surrogate(body)), 400, "InvalidParameter")
    assert "surrogate" in str(error["message"])


def test_lone_surrogate_echoed_in_a_spec_message_comes_back_escaped(http):
    """The spec's AnswerError quotes answer1; a surrogate there is sent as the JSON escape, not as a 500."""
    body = {"model": "pai-judge", "messages": [{"role": "user", "content": [
        {"mode": "pairwise", "type": "json", "json": {"question": "q", "answer1": "SURROGATE", "answer2": ""}}]}]}
    response = http.post("/chat/completions", content=with_lone_surrogate(body))
    error = assert_error(response, 400, "AnswerError")
    assert error["message"] == "Answer1 or answer2 should not be empty when mode=pairwise, answer1: \ud800, answer2: ."
    assert response.content.isascii() and b"\\ud800" in response.content


def test_raw_surrogate_bytes_are_402_invalid_body(http):
    """CESU-style bytes (ED A0 80) are not UTF-8: the body does not load as JSON text."""
    raw = json.dumps(judge_body(question="q", answer="a")).encode().replace(b'"a"', b'"a\xed\xa0\x80"')
    assert_error(http.post("/chat/completions", content=raw), 402, "InvalidBody")


def test_a_surrogate_pair_is_fine(http):
    raw = json.dumps(judge_body(question="What is 2+2? \U0001F600", answer="4"))
    assert "\\ud83d\\ude00" in raw
    assert http.post("/chat/completions", content=raw.encode()).status_code == 200


# --------------------------------------------------------------------------- field length


def test_oversize_field_message_names_the_field_its_length_and_the_limit(http):
    size = protocol.MAX_FIELD_CHARS + 5
    error = assert_error(http.post("/chat/completions", json=judge_body(question="q", answer="x" * size)),
                         400, "ContentError")
    assert error["param"] == "answer"
    message = str(error["message"])
    assert message.startswith(CONTENT_PREFIX)
    assert "answer" in message[len(CONTENT_PREFIX):] and f"{size:,}" in message
    assert f"{protocol.MAX_FIELD_CHARS:,}" in message


def test_oversize_custom_message_names_the_message(http):
    size = protocol.MAX_FIELD_CHARS + 1
    body = {"model": "pai-judge", "messages": [{"role": "system", "content": "judge"},
                                               {"role": "user", "content": "x" * size}]}
    error = assert_error(http.post("/chat/completions", json=body), 400, "ContentError")
    message = str(error["message"])
    assert message.startswith(CONTENT_PREFIX) and "messages[1].content" in message and f"{size:,}" in message


def test_client_and_server_refuse_an_oversize_field_alike(http):
    body = judge_body(question="q" * (protocol.MAX_FIELD_CHARS + 1), answer="a")
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_chat_body(body)
    error = assert_error(http.post("/chat/completions", json=body), 400, "ContentError")
    assert (info.value.code, info.value.message, info.value.param) == (error["code"], error["message"], error["param"])


# --------------------------------------------------------------------------- batch lines


def batch_line(custom_id: str, body: bytes | dict[str, object]) -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (b'{"custom_id": "' + custom_id.encode() + b'", "method": "POST", "url": "/v1/chat/completions", '
            b'"body": ' + raw + b"}")


def run_batch(http: httpx.Client, data: bytes) -> dict[str, object]:
    up = http.post("/files", data={"purpose": "batch"}, files={"file": ("input.jsonl", data)})
    assert up.status_code == 200, up.text
    create = http.post("/batches", json={"input_file_id": up.json()["id"], "endpoint": "/v1/chat/completions",
                                         "completion_window": "24h"})
    assert create.status_code == 200, create.text
    batch = create.json()
    deadline = time.monotonic() + 30
    while batch["status"] not in ("Succeeded", "Failed", "Expired", "Cancelled"):
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)
        batch = http.get(f"/batches/{batch['id']}").json()
    return batch


def file_lines(http: httpx.Client, file_id: object) -> list[dict[str, object]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in http.get(f"/files/{file_id}/content").text.splitlines() if line.strip()]


def test_bad_batch_lines_fail_alone_with_the_online_code(http):
    good = judge_body(question="What is 2+2?", answer="4")
    deep_body = b'{"model": "pai-judge", "messages": ' + deep(100_000) + b"}"
    surrogate_body = with_lone_surrogate(judge_body(question="What is 2+2?", answer="4 SURROGATE"))
    too_deep = b'{"model": "pai-judge", "messages": ' + deep(MAX_JSON_DEPTH + 1) + b"}"
    lines = [batch_line("good-0", good), batch_line("deep", deep_body), batch_line("good-1", good),
             batch_line("surrogate", surrogate_body), batch_line("too-deep", too_deep),
             batch_line("good-2", good)]
    online = {"deep": http.post("/chat/completions", content=deep_body),
              "surrogate": http.post("/chat/completions", content=surrogate_body),
              "too-deep": http.post("/chat/completions", content=too_deep)}
    batch = run_batch(http, b"\n".join(lines) + b"\n")
    assert batch["status"] == "Succeeded", batch
    assert batch["request_counts"] == {"total": 6, "completed": 3, "failed": 3}
    judged = file_lines(http, batch["output_file_id"])
    assert [line["custom_id"] for line in judged] == ["good-0", "good-1", "good-2"]
    failed = {str(line["custom_id"]): line for line in file_lines(http, batch["error_file_id"])}
    assert set(failed) == set(online)
    for custom_id, response in online.items():
        line = failed[custom_id]
        error = response.json()["error"]
        assert line["error"] == {"code": error["code"], "message": error["message"]}, custom_id  # type: ignore[index]
        assert line["response"]["status_code"] == response.status_code  # type: ignore[index]
        assert line["response"]["body"]["error"] == error  # type: ignore[index]


def test_oversize_batch_create_body_is_413_unread(http):
    response = http.post("/batches", content=b"{" + b" " * (33 * 1024 * 1024))
    assert_error(response, 413, "RequestTooLarge")
