"""Parsing a batch input file: its JSONL lines checked as OpenAI checks them before a batch runs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..protocol import BATCH_ENDPOINT, ProtocolError, invalid_body
from .bodies import too_deep

MAX_BATCH_INPUT_ERRORS = 100
"""A bad input file reports at most this many line errors (a 10 MB file could have 100k)."""


_TOO_DEEP = object()
"""Stands for a member of a line nested too deep to load (see :func:`shallow_object`)."""


@dataclass(frozen=True)
class BatchLine:
    """One request of a batch input file: its 1-based line number, ``custom_id`` and chat body."""

    line: int
    custom_id: str
    body: dict[str, Any]
    error: ProtocolError | None = None
    """Set when the body cannot be judged at all (nested too deep: 402 InvalidBody, as online); the line
    then fails alone, with ``body`` empty, and the rest of the batch runs."""


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
            item = load_line(raw)
        except ValueError:
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
        if body is _TOO_DEEP or (isinstance(body, dict) and too_deep(body)):
            lines.append(BatchLine(number, custom_id, {}, invalid_body()))
            continue
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



def load_line(raw: bytes) -> Any:
    """A JSONL line's value; a line too deep for ``json.loads`` is read as a shallow object (its too-deep
    members :data:`_TOO_DEEP`), so its ``custom_id`` is known and only its request fails. ValueError: not JSON."""
    text = raw.decode("utf-8")  # strict, as for an online body: raw surrogate bytes are not UTF-8
    try:
        return json.loads(text)
    except RecursionError:
        pass
    try:
        return shallow_object(text)
    except RecursionError:  # a member name nested too deep: no object we could read
        raise ValueError("nested too deep") from None


_DECODER = json.JSONDecoder()
_STRUCTURE = re.compile(r'["\[\]{}]')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _space(text: str, pos: int) -> int:
    """``pos`` moved past JSON whitespace."""
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def _expect(text: str, pos: int, char: str) -> int:
    if not text.startswith(char, pos):
        raise ValueError(f"expected {char!r} at {pos}")
    return _space(text, pos + 1)


def shallow_object(text: str) -> dict[str, Any]:
    """The top-level JSON object in ``text``, each member loaded by ``json`` except those nested too deep to
    load, which are skipped (brackets matched without recursion) and given as :data:`_TOO_DEEP`."""
    members: dict[str, Any] = {}
    pos = _expect(text, _space(text, 0), "{")
    while not text.startswith("}", pos):
        if members:
            pos = _expect(text, pos, ",")
        key, pos = _DECODER.raw_decode(text, pos)
        if not isinstance(key, str):
            raise ValueError("a member name must be a string")
        pos = _expect(text, _space(text, pos), ":")
        try:
            members[key], pos = _DECODER.raw_decode(text, pos)
        except RecursionError:
            members[key], pos = _TOO_DEEP, _skip_container(text, pos)
        pos = _space(text, pos)
    if text[pos + 1:].strip(" \t\n\r"):
        raise ValueError("extra data after the object")
    return members


def _skip_container(text: str, pos: int) -> int:
    """The end of the array / object starting at ``pos``, found by matching brackets outside strings."""
    if not text.startswith(("[", "{"), pos):
        raise ValueError("expected an array or object")
    depth = 0
    while True:
        found = _STRUCTURE.search(text, pos)
        if found is None:
            raise ValueError("unterminated array or object")
        if found.group() == '"':
            string = _STRING.match(text, found.start())
            if string is None:
                raise ValueError("unterminated string")
            pos = string.end()
            continue
        depth += 1 if found.group() in "[{" else -1
        pos = found.end()
        if depth == 0:
            return pos
