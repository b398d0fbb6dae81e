"""PAI judge protocol data and request validation, shared by the client and the local server.

Everything in this module mirrors ``pai-judge-api-zh.txt`` / ``pai-judge-api-en.txt``: the
error table (status, code, message text), the 12 inner scenes, the prompt templates and the
defaults of the ``json`` fields. Both halves of the project validate through
:func:`parse_chat_body`, so a request the plugin refuses before any network is refused by the
server with the very same status, code and message.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

# --------------------------------------------------------------------------- models

DEFAULT_MODELS: dict[str, int] = {"pai-judge": 32768, "pai-judge-plus": 32768}
"""Model name -> context length. The English spec says 32768 tokens for both; the Chinese one
says 8k context / 2k output. The larger figure is the default; the server makes it configurable."""

DEFAULT_MODEL = "pai-judge"
DEFAULT_TEMPERATURE = 0.2
DEFAULT_MAX_TOKENS = 2048
DEFAULT_MAX_SCORE = 5
MAX_BATCH_FILE_BYTES = 10 * 1024 * 1024
COMPLETION_WINDOW = "24h"
BATCH_ENDPOINT = "/v1/chat/completions"

# --------------------------------------------------------------------------- scenes

INNER_SCENES: tuple[str, ...] = (
    "回答数学类问题",
    "回答确定性问题",
    "回答开放性问题",
    "文本改写",
    "创意文体写作",
    "信息与专业写作",
    "实用文体写作",
    "专业文体写作",
    "翻译",
    "阅读理解与信息提取",
    "角色扮演",
    "代码生成修改与分析",
)

# The spec's example scene description and metric (for 回答开放性问题), verbatim.
OPEN_QUESTION_SCENE_DESC = (
    "开放交流类指令,通常为询问一个开放领域问题,回复也是开放式的,如闲聊、咨询建议、寻求推荐等。"
)
OPEN_QUESTION_METRIC = (
    "1. 准确性:确保所提供信息的准确性,遵循常识和事实,避免误导用户。\n"
    "2. 相关性:回答必须针对用户提出的问题,避免无关内容,确保信息的相关性。\n"
    "3. 文化敏感与无害:了解和尊重用户的文化背景和差异,合乎伦理道德,避免文化偏见和不敏感的表达,避免包含任何可能冒犯的内容。\n"
    "4. 信息丰富性:在保证准确性的同时提供详尽的信息,尤其是用户可能未明确要求但对理解问题有帮助的背景信息。\n"
    "5. 清晰性:使用清晰、易懂的语言回答问题,避免可能引起误解的专业术语或复杂构造。\n"
    "6. 用户参与:鼓励用户进一步交流,展现对用户提问的关注和思考,通过提出问题或反馈来促进交流。\n"
    "7. 共情:回答时考虑用户的情感状态,适当表达共情和理解,特别是在回答包含情感色彩的问题时。\n"
    "8. 建设性反馈:即使在面对批评性或负面的问题时,也应保持积极和建设性的态度,提供有价值的回复和建议。"
)

# Default score descriptions for max_score=5 (spec table, verbatim).
DEFAULT_SCORE_DESC = (
    "1:回复有重大缺陷,完全背离标准,在实际中不该出现。\n"
    "2:回复有部分内容符合标准,可以被采纳,但作为一个整体,回复质量并不合格。\n"
    "3:回复优缺点并存,在要求的评价标准内整体优点超过缺点。\n"
    "4:回复质量过关,整体符合标准,存在个别小问题可以提升,在给定参考答案时此档位代表参考答案所呈现的回复质量。\n"
    "5:回复非常完美,各方面均严格符合标准,在给定参考答案时此档位代表优于参考答案的回复质量。"
)

DEFAULT_STEPS = (
    "1. 回忆相关的智能助手回复标准,并仔细阅读、理解待评估回复。\n"
    "2. 从所有标准中识别出针对当前用户指令以及回复的关键标准,包括表现好以及不足的。\n"
    "3. 除了给定的标准外,添加您认为必要的评估当前用户指令回复的其他重要标准。\n"
    "4. 依据您最终筛选的标准,依次给该回复赋分(1~5之间),加权汇总所有小项得分后给出该回复综合评分。 "
    "仔细思考,然后给出您的结论。您返回的模板如下,注意输出需保留模板中的'[['和']]':。"
)

# --------------------------------------------------------------------------- templates

SINGLE_TEMPLATE = """你的任务是对AI智能助手回复进行质量评分。

你非常清晰地认识到当用户提出一个关于【${scene}】场景的指令时(该场景的定义为:${scene_desc}),一个AI智能助手的回复应当符合以下标准(按标准重要性程度从高到低依次给出):
[标准开始]
${metric}
[标准结束]

评分采取${max_score}档制(1-${max_score}),各分数档位含义如下:
[档位含义开始]
${score_desc}
[档位含义结束]

针对用户指令,我们搜集到一个AI智能助手的如下回复。
请根据你所知的当前场景下智能助手的回复标准,综合评估该回复并提供评价。以下是用户指令和助手回复数据:
[数据开始] 
***
[用户指令]: ${question}
***
[回复]: ${answer}
***
[参考答案]: ${ref_answer}
***
[数据结束]

你需要按照以下流程评估以上回复:
${steps}

仔细思考一会,然后给出你的结论。"""

PAIRWISE_TEMPLATE = """你的任务是对AI智能助手回复进行质量评分。

你非常清晰地认识到当用户提出一个关于【${scene}】场景的指令时(该场景的定义为:${scene_desc}),一个AI智能助手的回复应当符合以下标准(按标准重要性程度从高到低依次给出):
[标准开始]
${metric}
[标准结束]

评分采取${max_score}档制(1-${max_score}),各分数档位含义如下:
[档位含义开始]
${score_desc}
[档位含义结束]

针对一个【${scene}】场景的用户指令,我们搜集到两个AI智能助手的回复。
请根据你所知的当前场景下智能助手回复标准,综合评估并判断哪个回复更好或者并列(包括都好和都不好)。以下用户指令和助手回复数据:
[数据开始]
***
[用户指令]: ${question}
***
[回复1]: ${answer1}
***
[回复2]: ${answer2}
***
[参考答案]: ${ref_answer}
***
[数据结束]

你需要按照以下流程评估并比较两个回复:
{steps}

仔细思考一会,然后给出你的结论。"""


def fill_template(template: str, values: dict[str, Any]) -> str:
    """Fill ``${name}`` placeholders (and the spec's bare ``{steps}`` in the pairwise template)."""

    def sub(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return "" if value is None else str(value)

    return re.sub(r"\$?\{(scene|scene_desc|metric|max_score|score_desc|question|answer1|answer2|answer|ref_answer|steps)\}", sub, template)


# --------------------------------------------------------------------------- errors


class ProtocolError(Exception):
    """A request the PAI judge API refuses: HTTP status, error code and the spec's message."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param

    def envelope(self) -> dict[str, Any]:
        """The OpenAI error envelope, so the openai SDK raises the matching exception."""
        return {"error": {"message": self.message, "type": ERROR_TYPES.get(self.status, "api_error"),
                          "param": self.param, "code": self.code}}


ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "invalid_request_error",
               403: "permission_error", 404: "not_found_error", 429: "rate_limit_error", 500: "api_error"}

CONTENT_EXAMPLE = ('{"content": [{"type": "json", "mode": "[single / pairwise]", "json": '
                   '{"question": "<question>", "answer": "<answer>" ...}}]')


def messages_error() -> ProtocolError:
    return ProtocolError(400, "MessagesError", "\"messages\" not in body or type of \"messages\" is not list.", "messages")


def content_error(param: str | None = "messages") -> ProtocolError:
    return ProtocolError(400, "ContentError", f"Content should be like: {CONTENT_EXAMPLE}", param)


def response_format_error() -> ProtocolError:
    return ProtocolError(400, "ResponseFormatError",
                         'Response_format should be one of [{"type": "text"}, {"type": "json_object"}]', "response_format")


def mode_error(mode: Any) -> ProtocolError:
    return ProtocolError(400, "ModeError", f"Mode must be in [single, pairwise], mode: {mode}.", "mode")


def question_error() -> ProtocolError:
    return ProtocolError(400, "QuestionError", "Question should not be empty", "question")


def answer_error_single() -> ProtocolError:
    return ProtocolError(400, "AnswerError", "Answer should not be empty when mode=single.", "answer")


def answer_error_pairwise(answer1: Any, answer2: Any) -> ProtocolError:
    return ProtocolError(400, "AnswerError", "Answer1 or answer2 should not be empty when mode=pairwise, "
                         f"answer1: {answer1}, answer2: {answer2}.", "answer1")


def scene_error_not_native() -> ProtocolError:
    return ProtocolError(400, "SceneError",
                         "Scene need to be specified a judge-native scece when scene_desc and metric is empty.", "scene")


def scene_error_custom_incomplete(scene_desc: Any, metric: Any) -> ProtocolError:
    return ProtocolError(400, "SceneError", "Scene_desc and metric need not be specified when scene is not empty and "
                         f"not a inner scene, scene_desc: {scene_desc}, metric: {metric}.", "scene_desc")


def scene_error_empty_scene(scene_desc: Any, metric: Any) -> ProtocolError:
    return ProtocolError(400, "SceneError", "Scene_desc and metric need not to be specified when scene is empty, "
                         f"scene_desc: {scene_desc}, metric: {metric}.", "scene_desc")


def score_error_missing_desc() -> ProtocolError:
    return ProtocolError(400, "ScoreError", "Score_desc need to be specified when max_score is not empty.", "score_desc")


def score_error_missing_max() -> ProtocolError:
    return ProtocolError(400, "ScoreError", "Score_desc need not to be specified when max_score is empty.", "max_score")


def invalid_token() -> ProtocolError:
    return ProtocolError(401, "InvalidToken", "Invalid Token provided.")


def invalid_body(param: str | None = None) -> ProtocolError:
    return ProtocolError(402, "InvalidBody", "json load request body error", param)


def invalid_parameter(param: str, why: str) -> ProtocolError:
    """Not a row of PAI's error table: the body is valid JSON but a generation parameter breaks the spec's
    parameter table (type or range). PAI documents no answer for that; 402 InvalidBody ("json load request
    body error") would send users looking for a JSON syntax error, so this says which parameter and why."""
    return ProtocolError(400, "InvalidParameter", f"Invalid parameter {param}: {why}", param)


def green_net_filter(risk_info: str) -> ProtocolError:
    return ProtocolError(403, "GreenNetFilter", f"The output content contains high risk. risk_info: {risk_info}")


def model_not_found(models: list[str] | tuple[str, ...] | None = None) -> ProtocolError:
    names = list(models) if models else list(DEFAULT_MODELS)
    return ProtocolError(404, "ModelNotFound", f"Model not found, model must in {names}", "model")


def model_service_failed(stage: str, request_id: str, errmsg: str) -> ProtocolError:
    """``stage`` is one of Scenario_division, Request_judge_model, Request_judge_model_with_stream."""
    return ProtocolError(500, "ModelServiceFailed", f"{stage}, load error, request_id: {request_id}, errmsg: {errmsg}")


def rate_limited(retry_after_ms: int) -> ProtocolError:
    """Not in the spec's table: what a throttled gateway answers (the local server's ``429`` fault)."""
    return ProtocolError(429, "RateLimited", f"Requests rate limit exceeded, please retry after {retry_after_ms} ms.")


def context_length_exceeded(context: int, prompt_tokens: int, max_tokens: int) -> ProtocolError:
    """Not in the spec's table: the prompt plus ``max_tokens`` does not fit the model's context."""
    return ProtocolError(400, "ContextLengthExceeded",
                         f"This model's maximum context length is {context} tokens. However, you requested "
                         f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
                         "completion). Please reduce the length of the messages or completion.", "messages")


# --------------------------------------------------------------------------- request parsing

JUDGE_FIELDS = ("question", "answer", "answer1", "answer2", "ref_answer", "scene", "scene_desc", "metric",
                "max_score", "score_desc", "steps")
MAX_FIELD_CHARS = 200_000
"""A single judge field longer than this is refused (ContentError, param = the field) before any work."""

Kind = Literal["single", "pairwise", "custom"]


@dataclass
class GenerationParams:
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    n: int = 1
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    response_format: Literal["text", "json_object"] = "text"
    stream: bool = False
    include_usage: bool = False
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logprobs: bool = False
    top_logprobs: int | None = None
    user: str | None = None
    logit_bias: dict[str, float] | None = None
    """Accepted as the spec's table says; the lexical engine ignores it, the openai engine forwards it."""
    stop_token_ids: list[int] = field(default_factory=list)
    """``stop`` entries given as token ids (the spec allows them); engines without a tokenizer ignore them."""


@dataclass
class ChatCall:
    """A validated ``/v1/chat/completions`` request."""

    model: str
    kind: Kind
    fields: dict[str, Any]
    """For single/pairwise: the judge ``json`` fields as sent (blank ones None), ``max_score`` an int
    (default 5) and ``score_desc`` defaulted only when max_score was defaulted."""
    messages: list[dict[str, str]]
    """The conversation flattened to ``{"role", "content": str}``; for judge calls, the prompt
    built from the spec's template is the last user message."""
    params: GenerationParams


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(body: dict[str, Any], name: str, default: Any, *, integer: bool = False,
            low: float | None = None, high: float | None = None, high_open: bool = False,
            allow_none: bool = False) -> Any:
    """A numeric parameter within the spec's range ``[low, high]`` (``[low, high)`` with ``high_open``)."""
    value = body.get(name, default)
    if value is None:
        if allow_none or default is None:
            return None
        return default
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_parameter(name, f"must be {kind}, got {json.dumps(value, ensure_ascii=False)[:80]}")
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid_parameter(name, f"must be a finite number, got {value}")
    if integer and not float(value).is_integer():
        raise invalid_parameter(name, f"must be an integer, got {value}")
    too_high = high is not None and (value >= high if high_open else value > high)
    if (low is not None and value < low) or too_high:
        bounds = f"[{_fmt_bound(low)}, {_fmt_bound(high)}{')' if high_open else ']'}"
        raise invalid_parameter(name, f"must be in {bounds}, got {value}")
    return int(value) if integer else float(value)


def _fmt_bound(value: float | None) -> str:
    if value is None:
        return "inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else str(value)


def parse_generation_params(body: dict[str, Any]) -> GenerationParams:
    """Validate every generation parameter of the spec's table; a wrong type is 402 InvalidBody."""
    rf = body.get("response_format")
    if rf is None:
        response_format = "text"
    elif isinstance(rf, dict) and rf.get("type") in ("text", "json_object") and set(rf) <= {"type"}:
        response_format = rf["type"]
    else:
        raise response_format_error()
    stop = body.get("stop")
    stops: list[str] = []
    stop_ids: list[int] = []
    if isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list):
        for entry in stop:  # "string or array": strings, or token ids
            if isinstance(entry, str):
                stops.append(entry)
            elif isinstance(entry, int) and not isinstance(entry, bool) and entry >= 0:
                stop_ids.append(entry)
            else:
                raise invalid_parameter("stop", "must be a string or an array of strings or token ids")
    elif stop is not None:
        raise invalid_parameter("stop", "must be a string or an array of strings or token ids")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid_parameter("stream", "must be true or false")
    opts = body.get("stream_options")
    if opts is not None and (not isinstance(opts, dict) or not isinstance(opts.get("include_usage", False), bool)):
        raise invalid_parameter("stream_options", 'must be an object like {"include_usage": true}')
    logprobs = body.get("logprobs", False)
    if logprobs is not None and not isinstance(logprobs, bool):
        raise invalid_parameter("logprobs", "must be true or false")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise invalid_parameter("user", "must be a string")
    _check_types(body)
    top_logprobs = _number(body, "top_logprobs", None, integer=True, low=0, high=20)
    if top_logprobs is not None and not logprobs:
        raise invalid_parameter("top_logprobs", "requires logprobs to be true")
    return GenerationParams(
        temperature=_number(body, "temperature", DEFAULT_TEMPERATURE, low=0, high=2, high_open=True),
        top_p=_number(body, "top_p", None, low=0, high=1),
        max_tokens=_number(body, "max_tokens", DEFAULT_MAX_TOKENS, integer=True, low=1),
        n=_number(body, "n", 1, integer=True, low=1, high=128),
        seed=_number(body, "seed", None, integer=True, low=0, high=2**64 - 1),
        stop=stops,
        response_format=response_format,  # type: ignore[arg-type]
        stream=stream,
        include_usage=bool(stream and opts and opts.get("include_usage")),
        frequency_penalty=_number(body, "frequency_penalty", 0.0, low=-2, high=2),
        presence_penalty=_number(body, "presence_penalty", 0.0, low=-2, high=2),
        logprobs=bool(logprobs),
        top_logprobs=top_logprobs,
        user=user,
        stop_token_ids=stop_ids,
        logit_bias=dict(body["logit_bias"]) if body.get("logit_bias") else None,
    )


_PARAM_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "tools": ((list,), "an array"),
    "tool_choice": ((str, dict), "a string or an object"),
    "parallel_tool_calls": ((bool,), "true or false"),
    "logit_bias": ((dict,), "a map of token ids to biases"),
}


def _check_types(body: dict[str, Any]) -> None:
    """The parameters of the spec's table that the judge accepts but does not act on: type checks only."""
    for name, (types, wanted) in _PARAM_TYPES.items():
        value = body.get(name)
        if value is not None and not isinstance(value, types):
            raise invalid_parameter(name, f"must be {wanted}")


def _flatten_messages(messages: list[Any], depth: int = 0) -> list[Any]:
    """Unwrap the vendor curl examples' shape: message objects nested inside a user ``content``."""
    out: list[Any] = []
    for message in messages:
        if not isinstance(message, dict):
            raise content_error()
        content = message.get("content")
        if (isinstance(content, list) and content and depth < 4
                and all(isinstance(part, dict) and "role" in part and "content" in part for part in content)):
            out.extend(_flatten_messages(content, depth + 1))
        else:
            out.append(message)
    return out


def _judge_part(content: Any) -> dict[str, Any] | None:
    """The ``{"mode", "type": "json", "json"}`` part of a user content list, if it is one."""
    if not isinstance(content, list):
        return None
    for part in content:
        if isinstance(part, dict) and ("mode" in part or part.get("type") == "json"):
            return part
    return None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise content_error()
        return "\n".join(texts)
    raise content_error()


def validate_judge_fields(mode: Any, data: Any) -> dict[str, Any]:
    """Apply the spec's rules, in the order of its error table, to a ``json`` judge object."""
    if mode not in ("single", "pairwise"):
        raise mode_error(mode)
    if not isinstance(data, dict):
        raise content_error()
    fields: dict[str, Any] = {}
    for name in JUDGE_FIELDS:
        value = data.get(name)
        if name == "max_score":
            if value is None or value == "":
                fields[name] = None
                continue
            if isinstance(value, bool):
                raise content_error("max_score")
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value.strip())
            if not isinstance(value, int) or not 1 <= value <= 100:
                raise content_error("max_score")
            fields[name] = value
            continue
        if value is not None and not isinstance(value, str):
            raise content_error(name)
        if value is not None and len(value) > MAX_FIELD_CHARS:
            raise content_error(name)
        # Texts are kept as sent (a code answer's indentation matters); only an all-blank field counts as
        # absent. ``scene`` is a name, matched against the inner scenes, so it is trimmed.
        fields[name] = None if _is_blank(value) else (value.strip() if name == "scene" else value)
    if _is_blank(fields["question"]):
        raise question_error()
    if mode == "single" and _is_blank(fields["answer"]):
        raise answer_error_single()
    if mode == "pairwise" and (_is_blank(fields["answer1"]) or _is_blank(fields["answer2"])):
        raise answer_error_pairwise(data.get("answer1"), data.get("answer2"))
    scene, scene_desc, metric = fields["scene"], fields["scene_desc"], fields["metric"]
    if scene is None:
        if scene_desc is not None or metric is not None:
            raise scene_error_empty_scene(data.get("scene_desc"), data.get("metric"))
    elif scene not in INNER_SCENES:
        if scene_desc is None and metric is None:
            raise scene_error_not_native()
        if scene_desc is None or metric is None:
            raise scene_error_custom_incomplete(data.get("scene_desc"), data.get("metric"))
    if fields["max_score"] is not None and fields["score_desc"] is None:
        raise score_error_missing_desc()
    if fields["max_score"] is None:
        if fields["score_desc"] is not None:
            raise score_error_missing_max()
        fields["max_score"] = DEFAULT_MAX_SCORE
    return fields


def parse_chat_body(body: Any, models: dict[str, int] | None = None) -> ChatCall:
    """Validate a chat-completions body exactly as the PAI judge service does.

    Raises :class:`ProtocolError` with the spec's status, code and message. Custom templates
    (plain system/user text) come back with ``kind="custom"``.
    """
    models = DEFAULT_MODELS if models is None else models
    if not isinstance(body, dict):
        raise invalid_body()
    model = body.get("model")
    if not isinstance(model, str) or model not in models:
        raise model_not_found(list(models))
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise messages_error()
    params = parse_generation_params(body)
    messages = _flatten_messages(raw_messages)
    judge_parts = [(i, _judge_part(m.get("content"))) for i, m in enumerate(messages)]
    judge_parts = [(i, p) for i, p in judge_parts if p is not None]
    if judge_parts:
        index, part = judge_parts[-1]
        if part.get("type", "json") != "json":
            raise content_error()
        fields = validate_judge_fields(part.get("mode"), part.get("json"))
        kind: Kind = part["mode"]
        flat = [{"role": str(m.get("role", "user")), "content": _text_of(m.get("content"))}
                for i, m in enumerate(messages) if i != index]
        flat.append({"role": "user", "content": ""})  # filled by the engine with the template
        return ChatCall(model=model, kind=kind, fields=fields, messages=flat, params=params)
    flat = []
    for message in messages:
        role = message.get("role")
        if role not in ("system", "user", "assistant", "developer"):
            raise content_error()
        flat.append({"role": role, "content": _text_of(message.get("content"))})
    if not any(m["role"] == "user" and m["content"].strip() for m in flat):
        raise content_error()
    for m in flat:
        if len(m["content"]) > MAX_FIELD_CHARS:
            raise content_error("messages")
    return ChatCall(model=model, kind="custom", fields={}, messages=flat, params=params)


def parse_body_bytes(raw: bytes, models: dict[str, int] | None = None) -> ChatCall:
    """Like :func:`parse_chat_body` for the raw HTTP body; bad JSON is 402 InvalidBody."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid_body() from None
    return parse_chat_body(body, models)


# --------------------------------------------------------------------------- tokens

# A run of ASCII word characters splits into chunks of at most 4 (ceil(len / 4) tokens); every other
# visible character (CJK, punctuation) is one token. One regex pass: the server counts every prompt.
_TOKEN = re.compile(r"[A-Za-z0-9_]{1,4}|[^\sA-Za-z0-9_]")


def count_tokens(text: str) -> int:
    """A deterministic token estimate: one per CJK character or punctuation mark, ~one per 4 letters of a word."""
    return len(_TOKEN.findall(text))


# --------------------------------------------------------------------------- batch status words

PAI_STATUSES = ("Creating", "Queuing", "Running", "Finalizing", "Succeeded", "Failed", "Expired", "Cancelling",
                "Cancelled")
OPENAI_STATUSES = ("validating", "in_progress", "finalizing", "completed", "failed", "expired", "cancelling",
                   "cancelled")
_TO_OPENAI = {"creating": "validating", "queuing": "validating", "queued": "validating", "validating": "validating",
              "running": "in_progress", "in_progress": "in_progress", "inprogress": "in_progress",
              "finalizing": "finalizing", "succeeded": "completed", "success": "completed", "completed": "completed",
              "failed": "failed", "expired": "expired", "cancelling": "cancelling", "canceling": "cancelling",
              "cancelled": "cancelled", "canceled": "cancelled", "stopped": "cancelled"}
TERMINAL_STATUSES = ("completed", "failed", "expired", "cancelled")


def normalize_batch_status(status: str) -> str:
    """Map a PAI status word (``Creating`` ... ``Succeeded``) or an OpenAI one to OpenAI's word.

    An unknown word raises ValueError rather than being polled forever.
    """
    key = str(status).strip().lower().replace(" ", "").replace("-", "_")
    if key not in _TO_OPENAI:
        raise ValueError(f"unknown batch status {status!r}")
    return _TO_OPENAI[key]


def to_pai_status(openai_status: str) -> str:
    return {"validating": "Creating", "in_progress": "Running", "finalizing": "Finalizing", "completed": "Succeeded",
            "failed": "Failed", "expired": "Expired", "cancelling": "Cancelling",
            "cancelled": "Cancelled"}[openai_status]


# --------------------------------------------------------------------------- batch files

BATCH_PURPOSE = "batch"
BATCH_OUTPUT_PURPOSE = "batch_output"
BATCH_FILE_SUFFIX = ".jsonl"
MAX_BATCH_INPUT_ERRORS = 100
"""A bad input file reports at most this many line errors (a 10 MB file could have 100k)."""


def batch_file_too_large(size: int) -> ProtocolError:
    """The spec's 10 MB limit; the client checks it before uploading, with the same message."""
    return ProtocolError(400, "FileTooLarge",
                         f"File is too large: {size} bytes ({size / 1024 / 1024:.1f} MB); a batch file cannot exceed "
                         f"10 MB ({MAX_BATCH_FILE_BYTES} bytes). Split it into several files.", "file")


@dataclass(frozen=True)
class BatchLine:
    """One request of a batch input file: its 1-based line number, ``custom_id`` and chat body."""

    line: int
    custom_id: str
    body: dict[str, Any]


def _batch_line_error(code: str, line: int | None, message: str, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "line": line, "message": message, "param": param}


def parse_batch_input(data: bytes) -> tuple[list[BatchLine], list[dict[str, Any]]]:
    """Validate a batch input file as OpenAI does before running it.

    Returns the requests and the line errors (``{code, line, message, param}`` with OpenAI's
    codes); any error fails the whole batch. Only the envelope is checked here: a body the judge
    refuses becomes a failed line of the error file, as on the real service. Blank lines are
    skipped; ``method`` / ``url`` may be given but must then be ``POST`` / ``/v1/chat/completions``.
    """
    lines: list[BatchLine] = []
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if len(errors) >= MAX_BATCH_INPUT_ERRORS:
            break
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            errors.append(_batch_line_error("invalid_json_line", number, f"Line {number} is not valid JSON."))
            continue
        if not isinstance(item, dict):
            errors.append(_batch_line_error("invalid_request", number, f"Line {number} must be a JSON object."))
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(_batch_line_error("missing_required_parameter", number,
                                            f"Line {number}: custom_id must be a non-empty string.", "custom_id"))
            continue
        if custom_id in seen:
            errors.append(_batch_line_error("duplicate_custom_id", number,
                                            f"Line {number}: custom_id {custom_id!r} is already used on line "
                                            f"{seen[custom_id]}; custom_id must be unique.", "custom_id"))
            continue
        seen[custom_id] = number
        body = item.get("body")
        if not isinstance(body, dict):
            errors.append(_batch_line_error("missing_required_parameter", number,
                                            f"Line {number}: body must be a JSON object (the chat request).", "body"))
            continue
        method = item.get("method")
        if method is not None and (not isinstance(method, str) or method.upper() != "POST"):
            errors.append(_batch_line_error("invalid_method", number,
                                            f"Line {number}: method must be POST, got {method!r}.", "method"))
            continue
        url = item.get("url")
        if url is not None and url != BATCH_ENDPOINT:
            errors.append(_batch_line_error("invalid_url", number,
                                            f"Line {number}: url must be {BATCH_ENDPOINT!r}, got {url!r}.", "url"))
            continue
        lines.append(BatchLine(number, custom_id, body))
    if not lines and not errors:
        errors.append(_batch_line_error("empty_file", None, "The input file has no requests."))
    return lines, errors
