"""Every exception the plugin raises: one per documented PAI judge error code, and the plugin's own.

Tests catch exactly what went wrong: ``pytest.raises(SceneError)``, ``pytest.raises(JudgeAssertionError)``.
"""

from __future__ import annotations

from typing import Any


class JudgeAssertionError(AssertionError):
    """A verdict that did not meet its threshold (the failure text says what the judge said)."""


class JudgeInconclusive(JudgeAssertionError):
    """Several samples of the judge could not decide at the asked confidence (``--judge-inconclusive=fail``)."""


class DeferredVerdictError(RuntimeError):
    """A verdict read as a value in the test body while verdicts are deferred to the end of the run."""


class JudgeError(Exception):
    """A judge call that did not produce a reply: status, PAI error code and the server's message."""

    code: str = "JudgeError"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 param: str | None = None, hint: str | None = None, local: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        if code is not None:
            self.code = code
        self.param = param
        self.hint = hint
        self.local = local
        """True when the request was refused before sending, with the answer the server would give."""

    def __str__(self) -> str:
        # pytest prints "ClassName: str(exc)", so the code is named only when it differs from the class.
        parts = [self.message]
        tags = []
        if self.code != type(self).__name__:
            tags.append(self.code)
        if self.status is not None:
            tags.append(f"refused before sending; the server answers HTTP {self.status}" if self.local
                        else f"HTTP {self.status}")
        if tags:
            parts.append(f"[{', '.join(tags)}]")
        text = " ".join(parts)
        return f"{text}\nhint: {self.hint}" if self.hint else text

    def __reduce__(self) -> Any:  # picklable for xdist and multiprocessing
        return (_rebuild, (type(self), self.message, self.status, self.code, self.param, self.hint, self.local))


def _rebuild(cls: type[JudgeError], message: str, status: int | None, code: str, param: str | None,
             hint: str | None = None, local: bool = False) -> JudgeError:
    return cls(message, status=status, code=code, param=param, hint=hint, local=local)


class MessagesError(JudgeError):
    code = "MessagesError"


class ContentError(JudgeError):
    code = "ContentError"


class ResponseFormatError(JudgeError):
    code = "ResponseFormatError"


class ModeError(JudgeError):
    code = "ModeError"


class QuestionError(JudgeError):
    code = "QuestionError"


class AnswerError(JudgeError):
    code = "AnswerError"


class SceneError(JudgeError):
    code = "SceneError"


class ScoreError(JudgeError):
    code = "ScoreError"


class InvalidToken(JudgeError):
    code = "InvalidToken"


class InvalidBody(JudgeError):
    code = "InvalidBody"


class InvalidParameter(JudgeError):
    """A generation parameter outside the spec's table (type or range); not a PAI error code (see protocol)."""

    code = "InvalidParameter"


class ContextLengthExceeded(JudgeError):
    """The prompt plus max_tokens is over the model's context.

    Not a PAI error code: the local server's (see ``server.errors``).
    """

    code = "ContextLengthExceeded"


class GreenNetFilter(JudgeError):
    code = "GreenNetFilter"


class ModelNotFound(JudgeError):
    code = "ModelNotFound"


class ModelServiceFailed(JudgeError):
    code = "ModelServiceFailed"


class RateLimited(JudgeError):
    code = "RateLimited"


class JudgeTimeout(JudgeError):
    code = "Timeout"


class BudgetReached(JudgeError):
    """Not sent: the call would pass ``--judge-max-calls`` / ``--judge-max-tokens``."""

    code = "BudgetReached"


class Estimated(JudgeError):
    """Not sent: ``--judge-estimate`` counts what the call would cost instead of making it."""

    code = "Estimated"


class JudgeConnectionError(JudgeError):
    code = "ConnectionError"


class ReplayMiss(JudgeError):
    """``--judge-cache=replay`` and the verdict is not in the cache: offline CI must not call the judge."""

    code = "ReplayMiss"


class BatchError(JudgeError):
    """A batch job that failed, expired or was cancelled, or a batch line without a result."""

    code = "BatchError"


def error_to_dict(exc: BaseException) -> dict[str, Any]:
    """JSON-safe form of a failed call (any exception becomes a JudgeError naming it), for xdist."""
    error = exc if isinstance(exc, JudgeError) else JudgeError(f"{type(exc).__name__}: {exc}")
    return {"type": type(error).__name__, "message": error.message, "status": error.status, "code": error.code,
            "param": error.param, "hint": error.hint, "local": error.local}


def error_from_dict(data: dict[str, Any]) -> JudgeError:
    """The JudgeError of :func:`error_to_dict` again (of its class when it is one of ours)."""
    cls = globals().get(str(data.get("type")))
    if not (isinstance(cls, type) and issubclass(cls, JudgeError)):
        cls = JudgeError
    extra = {k: data[k] for k in ("hint", "local") if data.get(k)}
    return cls(data.get("message") or "", status=data.get("status"), code=data.get("code"), param=data.get("param"),
               **extra)


VERDICT_UNAVAILABLE = "VerdictUnavailable"
"""Error code of a held test's verdict that never came (batch failed / expired / timed out, Ctrl-C)."""


def verdict_unavailable(text: str, *, batch: bool) -> JudgeError:
    """The error a held request resolves to when no verdict came back for it."""
    return (BatchError if batch else JudgeError)(text, code=VERDICT_UNAVAILABLE)


BY_CODE: dict[str, type[JudgeError]] = {cls.code: cls for cls in (
    MessagesError, ContentError, ResponseFormatError, ModeError, QuestionError, AnswerError, SceneError,
    ScoreError, InvalidToken, InvalidBody, InvalidParameter, ContextLengthExceeded, GreenNetFilter, ModelNotFound,
    ModelServiceFailed, RateLimited, JudgeTimeout, JudgeConnectionError, ReplayMiss, BatchError, BudgetReached,
    Estimated)}
BY_STATUS: dict[int, type[JudgeError]] = {401: InvalidToken, 402: InvalidBody, 403: GreenNetFilter,
                                          404: ModelNotFound, 429: RateLimited, 500: ModelServiceFailed}


def from_code(status: int | None, code: str | None, message: str, param: str | None = None, *,
              local: bool = False) -> JudgeError:
    """The JudgeError subclass for a documented code (or, failing that, for the HTTP status)."""
    hint = None
    if status == 404 and code != "ModelNotFound":
        cls: type[JudgeError] = JudgeError  # a missing route, not a missing model
        hint = "the judge API answered 'not found' for this route: check that the base URL ends in /v1"
    else:
        cls = BY_CODE.get(code or "") or BY_STATUS.get(status or 0) or (
            ModelServiceFailed if status and status >= 500 else JudgeError)
    if cls is SceneError:
        from .protocol import INNER_SCENES

        hint = ("scene must be one of the judge's native scenes (" + ", ".join(INNER_SCENES) + "), or come "
                "with both scene_desc and metric; leave scene, scene_desc and metric empty to let the judge choose")
    elif cls is ScoreError:
        hint = "give max_score and score_desc together (score_desc describes each score from 1 to max_score)"
    elif cls is InvalidToken:
        import os

        hint = ("set JUDGE_MODEL_TOKEN to the token of the judge service" if not os.environ.get("JUDGE_MODEL_TOKEN")
                else "JUDGE_MODEL_TOKEN is set but the service refused it")
    return cls(message, status=status, code=code or cls.code, param=param, hint=hint, local=local)


REFUSED_BEFORE_SENDING: tuple[type[JudgeError], ...] = (
    MessagesError, ContentError, ResponseFormatError, ModeError, QuestionError, AnswerError, SceneError, ScoreError,
    InvalidParameter)
"""Errors of the request itself (not of the judge's answer): raised as they are in every mode, so
``pytest.raises(SceneError)`` works whether verdicts are immediate, deferred or batched."""
