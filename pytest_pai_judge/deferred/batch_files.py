"""The batch job's files: one JSONL line per request in, one result line per request out (spec, batch steps 1 and 5).

``custom_id`` is ``<node id>#<cache key>``: a person finds the test, the plugin finds the request.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

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


def split_files(lines: Iterable[tuple[str, bytes]], limit: int | None = None
                ) -> tuple[list[list[tuple[str, bytes]]], list[tuple[str, int]]]:
    """Pack lines into as few files as the size limit allows (one, unless the run is over 10 MB).

    Returns the files (lists of ``(key, line)``) and the keys whose single line alone is too big.
    """
    files: list[list[tuple[str, bytes]]] = []
    too_big: list[tuple[str, int]] = []
    for index, key, line in pack(lines, limit, too_big):
        if index == len(files):
            files.append([])
        files[index].append((key, line))
    return files, too_big


def pack(lines: Iterable[tuple[str, bytes]], limit: int | None, too_big: list[tuple[str, int]]
         ) -> Iterator[tuple[int, str, bytes]]:
    """``(file number, key, line)`` for each line that fits; a line alone over the limit goes to ``too_big``."""
    limit = protocol.MAX_BATCH_FILE_BYTES if limit is None else limit
    index, size = 0, 0
    for key, line in lines:
        if len(line) > limit:
            too_big.append((key, len(line)))
            continue
        if size and size + len(line) > limit:
            index, size = index + 1, 0
        size += len(line)
        yield index, key, line


@dataclass
class InputFile:
    """A batch input file written to disk, so that 20,000 lines are never in memory at once."""

    path: str
    keys: list[str] = field(default_factory=list)

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass


def write_files(lines: Iterable[tuple[str, bytes]], limit: int | None = None
                ) -> tuple[list[InputFile], list[tuple[str, int]]]:
    """Stream lines into temporary JSONL files, packed as :func:`split_files` packs them (the caller removes them)."""
    files: list[InputFile] = []
    too_big: list[tuple[str, int]] = []
    out: BinaryIO | None = None
    try:
        for index, key, line in pack(lines, limit, too_big):
            if index == len(files):
                if out is not None:
                    out.close()
                fd, path = tempfile.mkstemp(prefix="pai-judge-batch-", suffix=protocol.BATCH_FILE_SUFFIX)
                files.append(InputFile(path))
                out = os.fdopen(fd, "wb")
            assert out is not None
            out.write(line)
            files[index].keys.append(key)
    except BaseException:
        for file in files:
            file.remove()
        raise
    finally:
        if out is not None:
            out.close()
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
