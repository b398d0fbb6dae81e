"""Streaming ``multipart/form-data`` parsing for ``POST /v1/files``.

Why not ``request.form()``: it spools the whole part to a temp file whatever its size. Here the
file part goes straight to a temp file in the data directory (so accepting it is one rename) and
writing stops at the size limit; the rest is only counted, so the refusal can state the real size
while holding nothing more.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELD_BYTES = 64 * 1024
"""Non-file fields (``purpose`` and whatever else the SDK sends) are small."""


class UploadError(ValueError):
    """The request is not a usable multipart upload; the message says why."""


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    file_field: str | None = None
    filename: str | None = None
    size: int = 0
    """Bytes of the file part, counted in full even past the limit."""
    path: Path | None = None
    """The temp file holding the file part; None when there was no file or it was over the limit."""
    file_parts: int = 0


async def receive_upload(content_type: str, stream: AsyncIterator[bytes], tmp_path: Path, max_bytes: int) -> Upload:
    """Parse the body; the (single) file part is written to ``tmp_path`` unless it exceeds ``max_bytes``.

    The caller owns ``tmp_path`` afterwards (rename it into place or delete it).
    """
    mime, params = parse_options_header(content_type)
    if mime != b"multipart/form-data":
        raise UploadError("POST /v1/files expects multipart/form-data with the fields 'file' and 'purpose'.")
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError("multipart/form-data without a boundary.")

    upload = Upload()
    state = _PartState()
    out: IO[bytes] | None = None

    def on_part_begin() -> None:
        state.reset()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.header_name += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.header_value += data[start:end]

    def on_header_end() -> None:
        if state.header_name.lower() == b"content-disposition":
            state.disposition = state.header_value
        state.header_name, state.header_value = b"", b""

    def on_headers_finished() -> None:
        nonlocal out
        _, options = parse_options_header(state.disposition)
        state.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            upload.file_parts += 1
            state.is_file = True
            if upload.file_parts == 1:
                upload.file_field = state.name
                upload.filename = os.path.basename(options[b"filename"].decode("utf-8", "replace").replace("\\", "/"))
                # not a with-block: the file stays open across the parser callbacks and is closed in the finally below
                out = open(tmp_path, "wb")  # noqa: SIM115
                upload.path = tmp_path

    def on_part_data(data: bytes, start: int, end: int) -> None:
        nonlocal out
        chunk = data[start:end]
        if not state.is_file:
            if len(state.value) + len(chunk) > MAX_FIELD_BYTES:
                raise UploadError(f"Form field {state.name!r} is larger than {MAX_FIELD_BYTES} bytes.")
            state.value += chunk
            return
        if upload.file_parts != 1:
            return
        upload.size += len(chunk)
        if out is not None:
            if upload.size > max_bytes:  # stop holding it; keep counting for the message
                out.close()
                out = None
                tmp_path.unlink(missing_ok=True)
                upload.path = None
            else:
                out.write(chunk)

    def on_part_end() -> None:
        if not state.is_file:
            upload.fields[state.name] = state.value.decode("utf-8", "replace")

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
    })
    try:
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
        if out is not None:
            out.flush()
            os.fsync(out.fileno())  # accepted means on disk
    except UploadError:
        _discard(out, tmp_path)
        raise
    except BaseException as exc:
        _discard(out, tmp_path)
        if isinstance(exc, Exception) and type(exc).__module__.startswith("python_multipart"):
            raise UploadError("Invalid multipart/form-data body.") from exc
        raise
    finally:
        if out is not None:
            out.close()
    return upload


def _discard(out: IO[bytes] | None, path: Path) -> None:
    if out is not None:
        out.close()
    path.unlink(missing_ok=True)


@dataclass
class _PartState:
    name: str = ""
    disposition: bytes = b""
    header_name: bytes = b""
    header_value: bytes = b""
    value: bytes = b""
    is_file: bool = False

    def reset(self) -> None:
        self.name, self.disposition, self.header_name, self.header_value = "", b"", b"", b""
        self.value, self.is_file = b"", False
