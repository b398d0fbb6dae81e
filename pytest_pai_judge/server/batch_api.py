"""The OpenAI-compatible ``/v1/files`` and ``/v1/batches`` endpoints of the local judge server.

Why this shape: the PAI spec's batch steps 1-5 are the openai SDK's files / batches calls, so the
objects are OpenAI's (``FileObject``, ``Batch``, cursor lists) with the PAI spec's extras
(``in_process_at``, ``FinalizingAt``) and, by default, PAI's status words. The handlers only
validate and record; :class:`~.batch_runner.BatchRunner` does the judging in the background.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from .. import protocol
from ..protocol import ProtocolError
from .batch_runner import BatchRunner
from .bodies import check_unicode, load_json, read_body
from .config import ServerConfig
from .errors import batch_file_too_large, error_envelope
from .responses import SafeJSONResponse
from .store import BatchRow, FileRow, Store
from .uploads import UploadError, receive_upload

DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100
MAX_METADATA_KEYS = 16

Handler = Callable[[Request], Awaitable[Response]]


# --------------------------------------------------------------------------- errors


def invalid_parameter(param: str, message: str) -> ProtocolError:
    return ProtocolError(400, "InvalidParameter", message, param)


def file_not_found(file_id: str, param: str | None = "file_id") -> ProtocolError:
    return ProtocolError(404, "FileNotFound", f"No such file: {file_id!r}.", param)


def batch_not_found(batch_id: str) -> ProtocolError:
    return ProtocolError(404, "BatchNotFound", f"No such batch: {batch_id!r}.", "batch_id")


def _json_errors(handler: Handler) -> Handler:
    """Turn a raised ProtocolError into the OpenAI error envelope the SDK maps to its exceptions."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ProtocolError as err:
            return SafeJSONResponse(error_envelope(err), status_code=err.status)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


# --------------------------------------------------------------------------- objects


def to_pai_status(openai_status: str) -> str:
    """PAI's status word (``Creating`` ... ``Succeeded``) for the OpenAI word a batch is stored with."""
    return {"validating": "Creating", "in_progress": "Running", "finalizing": "Finalizing", "completed": "Succeeded",
            "failed": "Failed", "expired": "Expired", "cancelling": "Cancelling",
            "cancelled": "Cancelled"}[openai_status]


def file_object(row: FileRow) -> dict[str, Any]:
    return {"id": row.id, "object": "file", "bytes": row.bytes, "created_at": row.created_at,
            "filename": row.filename, "purpose": row.purpose, "status": "processed", "status_details": None}


def batch_object(row: BatchRow, dialect: str) -> dict[str, Any]:
    """The spec's batch object (PAI words, ``in_process_at``, ``FinalizingAt``) plus OpenAI's field names."""
    return {
        "id": row.id,
        "object": "batch",
        "endpoint": row.endpoint,
        "errors": {"object": "list", "data": row.errors} if row.errors else None,
        "input_file_id": row.input_file_id,
        "completion_window": row.completion_window,
        "status": row.status if dialect == "openai" else to_pai_status(row.status),
        "output_file_id": row.output_file_id,
        "error_file_id": row.error_file_id,
        "created_at": row.created_at,
        "in_process_at": row.in_progress_at,
        "in_progress_at": row.in_progress_at,
        # null while Creating (the spec's step 3 response), the deadline once the batch runs
        "expires_at": int(row.deadline) if row.in_progress_at is not None else None,
        "FinalizingAt": row.finalizing_at,
        "finalizing_at": row.finalizing_at,
        "completed_at": row.completed_at,
        "failed_at": row.failed_at,
        "expired_at": row.expired_at,
        "cancelling_at": row.cancelling_at,
        "cancelled_at": row.cancelled_at,
        "request_counts": {"total": row.total, "completed": row.completed, "failed": row.failed},
        "metadata": row.metadata,
        "usage": {"input_tokens": row.input_tokens, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": row.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": row.input_tokens + row.output_tokens},
    }


def list_object(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIST_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise invalid_parameter("limit", f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {raw!r}.") from None
    if limit < 1:
        raise invalid_parameter("limit", f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {raw!r}.")
    return min(limit, MAX_LIST_LIMIT)


def _count_requests(data: bytes) -> int:
    return sum(1 for line in data.split(b"\n") if line.strip())


def _check_metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if (not isinstance(metadata, dict) or len(metadata) > MAX_METADATA_KEYS
            or not all(isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
                       for k, v in metadata.items())):
        raise invalid_parameter("metadata", f"metadata must be an object of at most {MAX_METADATA_KEYS} string "
                                "keys (up to 64 characters) with string values (up to 512 characters).")
    return dict(metadata)


# --------------------------------------------------------------------------- service


class BatchService:
    """Files and batches: routes, their SQLite store and the background runner."""

    def __init__(self, config: ServerConfig,
                 complete: Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]],
                 stats: collections.Counter[str]) -> None:
        self.config = config
        self.complete = complete
        self.stats = stats
        self._store: Store | None = None
        self._runner: BatchRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    async def startup(self) -> None:
        """Open the store under the data dir and pick up every batch a previous run left unfinished."""
        store = Store(self.config.resolved_data_dir())
        store.open()
        self._store = store
        self._runner = BatchRunner(self.config, store, self.complete, self.stats)
        self._runner.resume_all()

    async def shutdown(self) -> None:
        """Stop the workers mid-line if need be; what was committed is what the next startup resumes from."""
        if self._runner is not None:
            await self._runner.stop()
        if self._store is not None:
            self._store.close()
        self._runner = None
        self._store = None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("BatchService.startup() has not run")
        return self._store

    @property
    def runner(self) -> BatchRunner:
        if self._runner is None:
            raise RuntimeError("BatchService.startup() has not run")
        return self._runner

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/files", _json_errors(self.create_file), methods=["POST"]),
            Route("/v1/files", _json_errors(self.list_files), methods=["GET"]),
            Route("/v1/files/{file_id}", _json_errors(self.retrieve_file), methods=["GET"]),
            Route("/v1/files/{file_id}", _json_errors(self.delete_file), methods=["DELETE"]),
            Route("/v1/files/{file_id}/content", _json_errors(self.file_content), methods=["GET"]),
            Route("/v1/batches", _json_errors(self.create_batch), methods=["POST"]),
            Route("/v1/batches", _json_errors(self.list_batches), methods=["GET"]),
            Route("/v1/batches/{batch_id}", _json_errors(self.retrieve_batch), methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", _json_errors(self.cancel_batch), methods=["POST"]),
        ]

    # ------------------------------------------------------------------ files

    async def create_file(self, request: Request) -> Response:
        """Step 2 of the spec: store the JSONL (on disk and in SQLite) before answering."""
        store = self.store
        tmp = store.tmp_path()
        try:
            try:
                upload = await receive_upload(request.headers.get("content-type", ""), request.stream(), tmp,
                                              protocol.MAX_BATCH_FILE_BYTES)
            except UploadError as err:
                raise invalid_parameter("file", str(err)) from None
            purpose = upload.fields.get("purpose")
            if purpose is None:
                raise invalid_parameter("purpose", "Missing form field 'purpose'; it must be 'batch'.")
            if purpose != protocol.BATCH_PURPOSE:
                raise invalid_parameter("purpose", f"purpose must be 'batch', got {purpose!r}.")
            if upload.file_parts == 0:
                raise invalid_parameter("file", "Missing form field 'file': upload the .jsonl as a file part.")
            if upload.file_parts > 1 or upload.file_field != "file":
                raise invalid_parameter("file", "Send exactly one file, as the form field 'file'.")
            filename = upload.filename or ""
            if not filename.lower().endswith(protocol.BATCH_FILE_SUFFIX):
                raise invalid_parameter("file", f"A batch file must be a .jsonl file, got {filename!r}.")
            if upload.size > protocol.MAX_BATCH_FILE_BYTES or upload.path is None:
                raise batch_file_too_large(upload.size)
            row = FileRow(id="file-batch-" + uuid.uuid4().hex.upper(), filename=filename,
                          purpose=protocol.BATCH_PURPOSE, bytes=upload.size, created_at=int(time.time()))
            store.add_file(row, tmp)
        finally:
            tmp.unlink(missing_ok=True)
        self.stats["files_created"] += 1
        return SafeJSONResponse(file_object(row))

    async def list_files(self, request: Request) -> Response:
        order = request.query_params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise invalid_parameter("order", f"order must be 'asc' or 'desc', got {order!r}.")
        after = request.query_params.get("after") or None
        page = self.store.list_files(after=after, limit=_limit(request), ascending=order == "asc",
                                     purpose=request.query_params.get("purpose") or None)
        if page is None:
            raise invalid_parameter("after", f"after must be the id of a listed file, got {after!r}.")
        rows, has_more = page
        return SafeJSONResponse(list_object([file_object(r) for r in rows], has_more))

    async def retrieve_file(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        row = self.store.get_file(file_id)
        if row is None:
            raise file_not_found(file_id)
        return SafeJSONResponse(file_object(row))

    async def file_content(self, request: Request) -> Response:
        """Step 5 of the spec: the raw JSONL bytes (the SDK asks with ``Accept: application/binary``)."""
        file_id = request.path_params["file_id"]
        path = self.store.file_path(file_id)
        if self.store.get_file(file_id) is None or not path.is_file():
            raise file_not_found(file_id)
        return FileResponse(path, media_type="application/jsonl")

    async def delete_file(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if not self.store.delete_file(file_id):
            raise file_not_found(file_id)
        return SafeJSONResponse({"id": file_id, "object": "file", "deleted": True})

    # ------------------------------------------------------------------ batches

    async def create_batch(self, request: Request) -> Response:
        """Step 3 of the spec. The body is read as JSON whatever its content type (the spec's curl sends none)."""
        body = load_json(await read_body(request))
        if not isinstance(body, dict):
            raise protocol.invalid_body()
        check_unicode(body)  # ids with a lone surrogate could not even be looked up (SQLite wants UTF-8)
        input_file_id = body.get("input_file_id")
        if not isinstance(input_file_id, str) or not input_file_id:
            raise invalid_parameter("input_file_id", "input_file_id is required: the id of an uploaded .jsonl file.")
        endpoint = body.get("endpoint")
        if endpoint != protocol.BATCH_ENDPOINT:
            raise invalid_parameter("endpoint", f"endpoint must be {protocol.BATCH_ENDPOINT!r} (the only batch "
                                    f"endpoint of the judge service), got {endpoint!r}.")
        window = body.get("completion_window")
        if window != protocol.COMPLETION_WINDOW:
            raise invalid_parameter("completion_window", f"completion_window must be {protocol.COMPLETION_WINDOW!r} "
                                    f"(the only window the judge service supports), got {window!r}.")
        metadata = _check_metadata(body.get("metadata"))
        store = self.store
        file = store.get_file(input_file_id)
        if file is None:
            raise file_not_found(input_file_id, "input_file_id")
        if file.purpose != protocol.BATCH_PURPOSE:
            raise invalid_parameter("input_file_id", f"The input file must have purpose 'batch', "
                                    f"{input_file_id!r} has {file.purpose!r}.")
        try:
            data = await asyncio.to_thread(store.file_path(input_file_id).read_bytes)
        except FileNotFoundError:
            raise file_not_found(input_file_id, "input_file_id") from None
        now = time.time()
        row = BatchRow(id=f"batch_{uuid.uuid4()}", input_file_id=input_file_id, endpoint=endpoint,
                       completion_window=window, status="validating", created_at=int(now),
                       deadline=now + self.config.batch_window_s, metadata=metadata, total=_count_requests(data))
        store.add_batch(row)
        self.stats["batches_created"] += 1
        self.runner.start(row.id)
        return SafeJSONResponse(batch_object(row, self.config.status_dialect))

    async def list_batches(self, request: Request) -> Response:
        after = request.query_params.get("after") or None
        page = self.store.list_batches(after=after, limit=_limit(request))
        if page is None:
            raise invalid_parameter("after", f"after must be the id of a listed batch, got {after!r}.")
        rows, has_more = page
        return SafeJSONResponse(list_object([batch_object(r, self.config.status_dialect) for r in rows], has_more))

    async def retrieve_batch(self, request: Request) -> Response:
        """Step 4 of the spec; ``request_counts`` move while the batch runs."""
        batch_id = request.path_params["batch_id"]
        row = self.store.get_batch(batch_id)
        if row is None:
            raise batch_not_found(batch_id)
        return SafeJSONResponse(batch_object(row, self.config.status_dialect))

    async def cancel_batch(self, request: Request) -> Response:
        """Cancelling at once, Cancelled when the runner has stopped; judged lines stay in the output file."""
        batch_id = request.path_params["batch_id"]
        store = self.store
        row = store.get_batch(batch_id)
        if row is None:
            raise batch_not_found(batch_id)
        if row.status in ("validating", "in_progress"):
            store.update_batch(batch_id, status="cancelling", cancelling_at=int(time.time()))
            self.runner.cancel(batch_id)
        elif row.status not in ("cancelling", "cancelled"):
            word = row.status if self.config.status_dialect == "openai" else to_pai_status(row.status)
            raise ProtocolError(400, "BatchNotCancellable", f"Cannot cancel a batch whose status is {word}.",
                                "batch_id")
        updated = store.get_batch(batch_id)
        assert updated is not None
        return SafeJSONResponse(batch_object(updated, self.config.status_dialect))
