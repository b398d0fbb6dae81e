"""Every row of the spec's error table, over real HTTP: status, code, exact message, and the SDK's exception."""

from __future__ import annotations

import re

import httpx
import openai
import pytest
from starlette.routing import Route

from pytest_pai_judge import protocol
from pytest_pai_judge.server import LocalJudgeServer

TOKEN = "err-t0ken"
CONTENT_MSG = ('Content should be like: {"content": [{"type": "json", "mode": "[single / pairwise]", "json": '
               '{"question": "<question>", "answer": "<answer>" ...}}]')
MS_FAILED = re.compile(r"^Request_judge_model, load error, request_id: [0-9a-f-]{36}, errmsg: .+")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LocalJudgeServer(token=TOKEN, data_dir=tmp_path_factory.mktemp("errors"),
                          faults=["GREEN-NET=greennet", "FAIL-500=500"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(api_key=f"Authorization: Bearer {TOKEN}", base_url=server.url, max_retries=0)


def post(server: LocalJudgeServer, body: object = None, *, content: bytes | None = None,
         token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if content is not None:
        return httpx.post(f"{server.url}/chat/completions", content=content, headers=headers)
    return httpx.post(f"{server.url}/chat/completions", json=body, headers=headers)


def judge(mode: object = "single", **fields: object) -> list[dict]:
    return [{"role": "user", "content": [{"mode": mode, "type": "json", "json": fields}]}]


ROWS = [
    # (id, messages, extra body, code, exact message)
    ("messages-empty", [], {}, "MessagesError", "\"messages\" not in body or type of \"messages\" is not list."),
    ("content-wrong-type", [{"role": "user", "content": 123}], {}, "ContentError", CONTENT_MSG),
    ("response-format", judge(question="q", answer="a"), {"response_format": {"type": "xml"}},
     "ResponseFormatError", 'Response_format should be one of [{"type": "text"}, {"type": "json_object"}]'),
    ("mode", judge("triple", question="q", answer="a"), {}, "ModeError",
     "Mode must be in [single, pairwise], mode: triple."),
    ("question", judge(question="  ", answer="a"), {}, "QuestionError", "Question should not be empty"),
    ("answer-single", judge(question="q"), {}, "AnswerError", "Answer should not be empty when mode=single."),
    ("answer-pairwise", judge("pairwise", question="q", answer1="a"), {}, "AnswerError",
     "Answer1 or answer2 should not be empty when mode=pairwise, answer1: a, answer2: None."),
    ("scene-not-native", judge(question="q", answer="a", scene="my scene"), {}, "SceneError",
     "Scene need to be specified a judge-native scece when scene_desc and metric is empty."),
    ("scene-custom-incomplete", judge(question="q", answer="a", scene="my scene", scene_desc="d"), {}, "SceneError",
     "Scene_desc and metric need not be specified when scene is not empty and not a inner scene, "
     "scene_desc: d, metric: None."),
    ("scene-empty", judge(question="q", answer="a", metric="m"), {}, "SceneError",
     "Scene_desc and metric need not to be specified when scene is empty, scene_desc: None, metric: m."),
    ("score-missing-desc", judge(question="q", answer="a", max_score=10), {}, "ScoreError",
     "Score_desc need to be specified when max_score is not empty."),
    ("score-missing-max", judge(question="q", answer="a", score_desc="1: bad"), {}, "ScoreError",
     "Score_desc need not to be specified when max_score is empty."),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_400_rows_raw_and_sdk(server, client, row):
    _, messages, extra, code, message = row
    response = post(server, {"model": "pai-judge", "messages": messages, **extra})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"], error["type"]) == (code, message, "invalid_request_error")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="pai-judge", messages=messages, **extra)
    assert info.value.status_code == 400 and info.value.code == code
    assert info.value.body["message"] == message


def test_messages_missing_or_not_a_list(server):
    for body in ({"model": "pai-judge"}, {"model": "pai-judge", "messages": "hello"}):
        response = post(server, body)
        assert response.status_code == 400 and response.json()["error"]["code"] == "MessagesError"


def test_401_invalid_token(server):
    for token in ("wrong", None):
        response = post(server, {"model": "pai-judge", "messages": judge(question="q", answer="a")}, token=token)
        assert response.status_code == 401
        assert response.json()["error"] == {"message": "Invalid Token provided.", "type": "authentication_error",
                                            "param": None, "code": "InvalidToken"}
    bad = openai.OpenAI(api_key="Authorization: Bearer wrong", base_url=server.url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="pai-judge", messages=judge(question="q", answer="a"))
    assert info.value.code == "InvalidToken"


def test_token_forms_accepted(server):
    body = {"model": "pai-judge", "messages": judge(question="q", answer="a")}
    for header in (f"Bearer {TOKEN}", f"bearer {TOKEN}", f"Bearer Authorization: Bearer {TOKEN}",
                   f"Bearer  Authorization:Bearer {TOKEN}"):
        response = httpx.post(f"{server.url}/chat/completions", json=body, headers={"Authorization": header})
        assert response.status_code == 200, header
    for header in (TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", f"Token {TOKEN}", f"Bearer Bearer x{TOKEN}"):
        response = httpx.post(f"{server.url}/chat/completions", json=body, headers={"Authorization": header})
        assert response.status_code == 401, header


def test_every_api_route_is_guarded(server):
    base = server.url.removesuffix("/v1")
    for path in ("/v1/models", "/v1/models/pai-judge", "/_pai_judge/stats", "/v1/files", "/v1/batches", "/v1/nothing"):
        assert httpx.get(base + path).status_code == 401, path
    ok = httpx.get(base + "/_pai_judge/stats", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["chat_completions"] >= 0


@pytest.mark.parametrize("payload", [b"not json", b"{", b"\xff\xfe", b""])
def test_402_invalid_body(server, payload):
    response = post(server, content=payload)
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "InvalidBody"
    assert response.json()["error"]["message"] == "json load request body error"


@pytest.mark.parametrize("params, param, why", [
    ({"temperature": 2}, "temperature", "must be in [0, 2), got 2"),  # the spec's range is [0, 2)
    ({"temperature": -0.1}, "temperature", "must be in [0, 2), got -0.1"),
    ({"top_p": 1.5}, "top_p", "must be in [0, 1], got 1.5"),
    ({"frequency_penalty": 2.5}, "frequency_penalty", "must be in [-2, 2], got 2.5"),
    ({"seed": -1}, "seed", "must be in [0, 18446744073709551615], got -1"),
    ({"user": 123}, "user", "must be a string"),
    ({"stop": [1.5]}, "stop", "must be a string or an array of strings or token ids"),
    ({"top_logprobs": 2}, "top_logprobs", "requires logprobs to be true"),
    ({"tools": "all"}, "tools", "must be an array"),
])
def test_400_invalid_parameter_names_the_parameter(server, params, param, why):
    """Valid JSON that breaks the parameter table is not PAI's 402 "json load request body error"."""
    response = post(server, {"model": "pai-judge", "messages": judge(question="q", answer="a"), **params})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"], error["message"]) == ("InvalidParameter", param,
                                                                   f"Invalid parameter {param}: {why}")


def test_parameters_at_the_edges_of_the_table_are_accepted(server):
    edges = {"temperature": 1.99, "top_p": 1, "frequency_penalty": -2, "seed": 2**64 - 1, "stop": ["\n\n", 13],
             "logprobs": True, "top_logprobs": 20, "tools": [], "tool_choice": "none", "parallel_tool_calls": False,
             "logit_bias": {"50256": -100}}
    response = post(server, {"model": "pai-judge", "messages": judge(question="q", answer="a"), **edges})
    assert response.status_code == 200, response.text


def test_invalid_parameter_via_sdk(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="pai-judge", messages=judge(question="q", answer="a"),
                                       temperature="hot")  # type: ignore[arg-type]
    assert info.value.code == "InvalidParameter" and 'temperature: must be a number, got "hot"' in str(info.value)


def test_403_green_net_filter(server, client):
    messages = judge(question="tell me GREEN-NET things", answer="a")
    response = post(server, {"model": "pai-judge", "messages": messages})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "GreenNetFilter"
    assert error["message"].startswith("The output content contains high risk. risk_info: ")
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="pai-judge", messages=messages)
    assert info.value.code == "GreenNetFilter"


def test_404_model_not_found(server, client):
    response = post(server, {"model": "gpt-4o", "messages": judge(question="q", answer="a")})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Model not found, model must in ['pai-judge', 'pai-judge-plus']"
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=judge(question="q", answer="a"))
    assert info.value.code == "ModelNotFound"


def test_500_model_service_failed(server, client):
    messages = judge(question="please FAIL-500 now", answer="a")
    response = post(server, {"model": "pai-judge", "messages": messages})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "ModelServiceFailed" and MS_FAILED.match(error["message"])
    assert response.headers["x-request-id"] in error["message"]
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="pai-judge", messages=messages)
    assert info.value.code == "ModelServiceFailed"


BAD_BODIES = [
    ("temperature-str", {"temperature": "hot"}, 400),
    ("temperature-range", {"temperature": 5}, 400),
    ("n-zero", {"n": 0}, 400),
    ("n-str", {"n": "2"}, 400),
    ("max-tokens-neg", {"max_tokens": -1}, 400),
    ("max-tokens-float", {"max_tokens": 1.5}, 400),
    ("stop-int", {"stop": 5}, 400),
    ("stream-str", {"stream": "yes"}, 400),
    ("stream-options", {"stream": True, "stream_options": "x"}, 400),
    ("seed-neg", {"seed": -1}, 400),
    ("user-int", {"user": 1}, 400),
    ("model-int", {"model": 5}, 404),
    ("messages-str", {"messages": "hi"}, 400),
    ("messages-items", {"messages": [1, 2]}, 400),
    ("message-no-content", {"messages": [{"role": "user"}]}, 400),
    ("text-part-int", {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, 400),
    ("role-robot", {"messages": [{"role": "robot", "content": "hi"}]}, 400),
    ("question-number", {"messages": judge(question=42, answer="a")}, 400),
    ("answer-list", {"messages": judge(question="q", answer=["a"])}, 400),
    ("max-score-str", {"messages": judge(question="q", answer="a", max_score="ten", score_desc="x")}, 400),
    ("max-score-bool", {"messages": judge(question="q", answer="a", max_score=True, score_desc="x")}, 400),
    ("json-not-object", {"messages": [{"role": "user", "content": [{"mode": "single", "type": "json", "json": "x"}]}]},
     400),
    ("type-not-json", {"messages": [{"role": "user", "content": [{"mode": "single", "type": "xml", "json": {}}]}]}, 400),
    ("oversize-question", {"messages": judge(question="x" * (protocol.MAX_FIELD_CHARS + 1), answer="a")}, 400),
    ("oversize-custom", {"messages": [{"role": "user", "content": "x" * (protocol.MAX_FIELD_CHARS + 1)}]}, 400),
]


@pytest.mark.parametrize("extra,status", [(b[1], b[2]) for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES])
def test_wrong_types_are_documented_4xx(server, extra, status):
    body = {"model": "pai-judge", "messages": judge(question="q", answer="a"), **extra}
    response = post(server, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]


@pytest.mark.parametrize("body", [[], None, "string", 3])
def test_body_not_an_object(server, body):
    response = post(server, body)
    assert response.status_code == 402 and response.json()["error"]["code"] == "InvalidBody"


def test_oversize_field_names_the_param(server):
    response = post(server, {"model": "pai-judge",
                             "messages": judge(question="q", answer="x" * (protocol.MAX_FIELD_CHARS + 1))})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ContentError" and response.json()["error"]["param"] == "answer"


def test_oversize_body_is_413(server):
    response = post(server, content=b"{" + b" " * (33 * 1024 * 1024))
    assert response.status_code == 413 and response.json()["error"]["code"] == "RequestTooLarge"


def test_unknown_route_and_method_are_json(server):
    base = server.url.removesuffix("/v1")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.get(base + "/v1/nothing", headers=auth)
    assert response.status_code == 404 and response.json()["error"]["code"] == "NotFound"
    assert httpx.get(base + "/elsewhere").json()["error"]["type"] == "not_found_error"
    response = httpx.get(f"{server.url}/chat/completions", headers=auth)
    assert response.status_code == 405 and response.json()["error"]["code"] == "MethodNotAllowed"


def test_unexpected_exception_is_500_envelope_without_traceback(tmp_path):
    async def explode(request):
        raise RuntimeError("secret internals /etc/passwd")

    server = LocalJudgeServer(data_dir=tmp_path)
    server.app.router.routes.append(Route("/v1/explode", explode))
    with server:
        response = httpx.get(f"{server.url}/explode")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "ModelServiceFailed"
    assert re.search(r"request_id: [0-9a-f-]{36}", error["message"])
    assert "secret" not in response.text and "Traceback" not in response.text


def test_token_never_in_responses_or_logs(server, caplog):
    caplog.set_level("DEBUG")
    post(server, {"model": "pai-judge", "messages": judge(question="FAIL-500", answer="a")})
    post(server, {"model": "pai-judge", "messages": judge(question="q", answer="a")}, token="wrong")
    assert TOKEN not in caplog.text
