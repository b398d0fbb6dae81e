"""Exceptions for every documented PAI judge error code, so tests can catch exactly what went wrong."""

from __future__ import annotations

from typing import Any


class JudgeError(Exception):
    """A judge call that did not produce a reply: status, PAI error code and the server's message."""

    code: str = "JudgeError"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        if code is not None:
            self.code = code
        self.param = param

    def __str__(self) -> str:
        where = f"HTTP {self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"

    def __reduce__(self) -> Any:  # picklable for xdist and multiprocessing
        return (_rebuild, (type(self), self.message, self.status, self.code, self.param))


def _rebuild(cls: type[JudgeError], message: str, status: int | None, code: str, param: str | None) -> JudgeError:
    return cls(message, status=status, code=code, param=param)


class MessagesError(JudgeError): code = "MessagesError"
class ContentError(JudgeError): code = "ContentError"
class ResponseFormatError(JudgeError): code = "ResponseFormatError"
class ModeError(JudgeError): code = "ModeError"
class QuestionError(JudgeError): code = "QuestionError"
class AnswerError(JudgeError): code = "AnswerError"
class SceneError(JudgeError): code = "SceneError"
class ScoreError(JudgeError): code = "ScoreError"
class InvalidToken(JudgeError): code = "InvalidToken"
class InvalidBody(JudgeError): code = "InvalidBody"
class GreenNetFilter(JudgeError): code = "GreenNetFilter"
class ModelNotFound(JudgeError): code = "ModelNotFound"
class ModelServiceFailed(JudgeError): code = "ModelServiceFailed"
class RateLimited(JudgeError): code = "RateLimited"
class JudgeTimeout(JudgeError): code = "Timeout"
class JudgeConnectionError(JudgeError): code = "ConnectionError"
class ReplayMiss(JudgeError):
    """``--judge-cache=replay`` and the verdict is not in the cache: offline CI must not call the judge."""

    code = "ReplayMiss"


class BatchError(JudgeError):
    """A batch job that failed, expired or was cancelled, or a batch line without a result."""

    code = "BatchError"


BY_CODE: dict[str, type[JudgeError]] = {cls.code: cls for cls in (
    MessagesError, ContentError, ResponseFormatError, ModeError, QuestionError, AnswerError, SceneError,
    ScoreError, InvalidToken, InvalidBody, GreenNetFilter, ModelNotFound, ModelServiceFailed, RateLimited,
    JudgeTimeout, JudgeConnectionError, ReplayMiss, BatchError)}
BY_STATUS: dict[int, type[JudgeError]] = {401: InvalidToken, 402: InvalidBody, 403: GreenNetFilter,
                                          404: ModelNotFound, 429: RateLimited, 500: ModelServiceFailed}


def from_code(status: int | None, code: str | None, message: str, param: str | None = None) -> JudgeError:
    """The JudgeError subclass for a documented code (or, failing that, for the HTTP status)."""
    cls = BY_CODE.get(code or "") or BY_STATUS.get(status or 0) or (
        ModelServiceFailed if status and status >= 500 else JudgeError)
    return cls(message, status=status, code=code or cls.code, param=param)
