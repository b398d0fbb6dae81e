"""The server's error replies: the spec's errors only the server raises, and the envelope they are sent in.

The request-validation errors shared with the client (and :class:`~pytest_pai_judge.protocol.ProtocolError`
itself) live in :mod:`pytest_pai_judge.protocol`; these are the ones only the service side produces
(auth, content filter, model failures, throttling, context length, the batch file limit).
"""

from __future__ import annotations

from typing import Any

from .. import protocol
from ..protocol import ProtocolError

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "invalid_request_error",
               403: "permission_error", 404: "not_found_error", 408: "invalid_request_error", 429: "rate_limit_error",
               500: "api_error"}


def error_envelope(err: ProtocolError) -> dict[str, Any]:
    """The OpenAI error envelope, so the openai SDK raises the matching exception."""
    return {"error": {"message": err.message, "type": ERROR_TYPES.get(err.status, "api_error"),
                      "param": err.param, "code": err.code}}


def invalid_token() -> ProtocolError:
    return ProtocolError(401, "InvalidToken", "Invalid Token provided.")


def green_net_filter(risk_info: str) -> ProtocolError:
    return ProtocolError(403, "GreenNetFilter", f"The output content contains high risk. risk_info: {risk_info}")


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


def batch_file_too_large(size: int) -> ProtocolError:
    """The spec's 10 MB limit on an uploaded batch file (``POST /v1/files``)."""
    return ProtocolError(400, "FileTooLarge",
                         f"File is too large: {size} bytes ({size / 1024 / 1024:.1f} MB); a batch file cannot exceed "
                         f"10 MB ({protocol.MAX_BATCH_FILE_BYTES} bytes). Split it into several files.", "file")


def body_timeout(timeout_s: float, received: int, declared: int | None) -> ProtocolError:
    """Not in the spec's table: the request body stopped arriving (see ``ServerConfig.body_timeout_s``)."""
    of = f" of {declared}" if declared is not None else ""
    return ProtocolError(408, "RequestTimeout",
                         f"The request body stopped arriving: nothing came for {timeout_s:g} s after {received}{of} "
                         "bytes. Send the whole body (as its Content-Length says) without pausing.")
