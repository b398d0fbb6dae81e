"""The batch job's files: one JSONL line per request in, one result line per request out (spec, batch steps 1 and 5).

``custom_id`` is ``<node id>#<cache key>``: a person finds the test, the plugin finds the request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from .. import errors, protocol
from ..client import reply_from_completion
from ..request import JudgeRequest
from .held import RawOutcome

MAX_NODEID_CHARS = 180


def custom_id(nodeid: str, key: str) -> str:
    """``<node id>#<cache key>``: a person finds the test, the plugin finds the request, both stable."""
    if len(nodeid) > MAX_NODEID_CHARS:
        half = MAX_NODEID_CHARS // 2
        nodeid = nodeid[:half] + "…" + nodeid[-half:]
    return f"{nodeid}#{key}"


def key_of(cid: str) -> str:
    return cid.rpartition("#")[2]


# --------------------------------------------------------------------------- JSONL files


def encode_line(cid: str, request: JudgeRequest) -> bytes:
    """One line of the spec's input format: ``{"custom_id": ..., "body": <chat request>}``."""
    return (json.dumps({"custom_id": cid, "body": request.body()}, ensure_ascii=False,
                       separators=(",", ":")) + "\n").encode("utf-8")


def split_files(lines: list[tuple[str, bytes]], limit: int | None = None
                ) -> tuple[list[list[tuple[str, bytes]]], list[tuple[str, int]]]:
    """Pack lines into as few files as the size limit allows (one, unless the run is over 10 MB).

    Returns the files (lists of ``(key, line)``) and the keys whose single line alone is too big.
    """
    limit = protocol.MAX_BATCH_FILE_BYTES if limit is None else limit
    files: list[list[tuple[str, bytes]]] = []
    too_big: list[tuple[str, int]] = []
    current: list[tuple[str, bytes]] = []
    size = 0
    for key, line in lines:
        if len(line) > limit:
            too_big.append((key, len(line)))
            continue
        if current and size + len(line) > limit:
            files.append(current)
            current, size = [], 0
        current.append((key, line))
        size += len(line)
    if current:
        files.append(current)
    return files, too_big


def outcome_of_line(row: dict[str, Any]) -> RawOutcome:
    """A line of the output or error file -> the reply, or the JudgeError an online call would have raised."""
    response: dict[str, Any] = row["response"] if isinstance(row.get("response"), dict) else {}
    status = response.get("status_code")
    body = response.get("body")
    line_error: dict[str, Any] = row["error"] if isinstance(row.get("error"), dict) else {}
    if status == 200 and isinstance(body, dict) and not line_error:
        try:
            return reply_from_completion(body)
        except errors.JudgeError as exc:
            return exc
    envelope: dict[str, Any] = body["error"] if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
    code = envelope.get("code") or line_error.get("code")
    message = envelope.get("message") or line_error.get("message") or f"HTTP {status}"
    if isinstance(status, int) and status >= 400:
        return errors.from_code(status, str(code) if code else None, str(message), envelope.get("param"))
    return errors.BatchError(f"batch line failed: {message}", code=str(code) if code else None)


def attribute(obj: Any, name: str, default: Any = None) -> Any:
    """A field of an SDK model (or a dict), read without serializing it (PAI's words are not OpenAI's)."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    value = getattr(obj, name, default)
    if value is default:
        value = (getattr(obj, "model_extra", None) or {}).get(name, default)
    return value


def split_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines of a streamed JSONL file, decoded one at a time (bad UTF-8 replaced, not fatal)."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *lines, rest = rest.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace")
    if rest:
        yield rest.decode("utf-8", errors="replace")
