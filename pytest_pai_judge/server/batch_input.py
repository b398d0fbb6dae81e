"""Parsing a batch input file: its JSONL lines checked as OpenAI checks them before a batch runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..protocol import BATCH_ENDPOINT

MAX_BATCH_INPUT_ERRORS = 100
"""A bad input file reports at most this many line errors (a 10 MB file could have 100k)."""


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
