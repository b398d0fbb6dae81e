"""PAI judge protocol data and request validation, shared by the plugin's client and the local server.

What both sides need from ``pai-judge-api-zh.txt`` / ``pai-judge-api-en.txt``: the models and
defaults, the 12 inner scenes, the request-validation rows of the error table (status, code,
message text), the batch constants and status words. Both halves of the project validate through
:func:`parse_chat_body`, so a request the plugin refuses before any network is refused by the
server with the very same status, code and message. What only the server uses (prompt templates,
its own error replies, token counts, batch-input parsing) lives in :mod:`pytest_pai_judge.server`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

# --------------------------------------------------------------------------- models

DEFAULT_MODELS: dict[str, int] = {"pai-judge": 32768, "pai-judge-plus": 32768}
"""Model name -> context length. The English spec says 32768 tokens for both; the Chinese one
says 8k context / 2k output. The larger figure is the default; the server makes it configurable."""

DEFAULT_MODEL = "pai-judge"
DEFAULT_TEMPERATURE = 0.2
DEFAULT_MAX_TOKENS = 2048
VERDICT_MAX_TOKENS = 1024
"""What the plugin asks for when a test gives no ``max_tokens``: room for a verdict (the spec's examples
run 257-438 completion tokens), not the server's 2,048, so a runaway reply is cut early and a long
question still fits the context window."""
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

# --------------------------------------------------------------------------- errors


class ProtocolError(Exception):
    """A request the PAI judge API refuses: HTTP status, error code and the spec's message."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param


CONTENT_EXAMPLE = ('{"content": [{"type": "json", "mode": "[single / pairwise]", "json": '
                   '{"question": "<question>", "answer": "<answer>" ...}}]')


def messages_error() -> ProtocolError:
    return ProtocolError(400, "MessagesError", "\"messages\" not in body or type of \"messages\" is not list.", "messages")


def content_error(param: str | None = "messages", detail: str | None = None) -> ProtocolError:
    """The spec's ContentError; ``detail`` (what exactly is wrong) follows the spec's fixed text in parentheses."""
    message = f"Content should be like: {CONTENT_EXAMPLE}"
    return ProtocolError(400, "ContentError", f"{message} ({detail})" if detail else message, param)


def too_long_detail(where: str, length: int) -> str:
    return f"{where} is {length:,} characters long, over the limit of {MAX_FIELD_CHARS:,} characters per field"


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


def invalid_body(param: str | None = None) -> ProtocolError:
    return ProtocolError(402, "InvalidBody", "json load request body error", param)


def invalid_parameter(param: str, why: str) -> ProtocolError:
    """Not a row of PAI's error table: the body is valid JSON but a generation parameter breaks the spec's
    parameter table (type or range). PAI documents no answer for that; 402 InvalidBody ("json load request
    body error") would send users looking for a JSON syntax error, so this says which parameter and why."""
    return ProtocolError(400, "InvalidParameter", f"Invalid parameter {param}: {why}", param)


def model_not_found(models: list[str] | tuple[str, ...] | None = None) -> ProtocolError:
    names = list(models) if models else list(DEFAULT_MODELS)
    return ProtocolError(404, "ModelNotFound", f"Model not found, model must in {names}", "model")


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
            raise content_error(name, too_long_detail(name, len(value)))
        # Texts are kept as sent (a code answer's indentation matters); only an all-blank field counts as
        # absent. ``scene`` is a name, matched against the inner scenes, so it is trimmed.
        fields[name] = None if value is None or _is_blank(value) else (value.strip() if name == "scene" else value)
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
    judge_parts: list[tuple[int, dict[str, Any]]] = []
    for i, m in enumerate(messages):
        judge_part = _judge_part(m.get("content"))
        if judge_part is not None:
            judge_parts.append((i, judge_part))
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
    for i, m in enumerate(flat):
        if len(m["content"]) > MAX_FIELD_CHARS:
            raise content_error("messages", too_long_detail(f"messages[{i}].content", len(m["content"])))
    return ChatCall(model=model, kind="custom", fields={}, messages=flat, params=params)


# --------------------------------------------------------------------------- batches

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


BATCH_PURPOSE = "batch"
BATCH_FILE_SUFFIX = ".jsonl"
