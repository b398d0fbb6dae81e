"""Batch mode's files and batches calls, through the ``openai`` SDK, with plain JSON dicts as answers.

The SDK makes the five calls (upload a file; create, retrieve and list batches; download a
file) with its retries, backoff and ``retry-after``, on :mod:`.call_policy`'s transport (a POST
whose answer timed out is not resent: the server may have made the file or the job). Its
exceptions become JudgeErrors where they are caught (:func:`.client.translate_exception`). The
answers are handed on as dicts (``model_dump()``), so the code that reads them, and the ledger
that stores them, never depend on the SDK's model classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import openai


class BatchAPI:
    """``/v1/files`` and ``/v1/batches`` of one judge service, over the SDK client ``sdk()`` gives."""

    def __init__(self, sdk: Callable[[], openai.OpenAI]) -> None:
        self.sdk = sdk

    def close(self) -> None:
        """Nothing of its own to close: the SDK client belongs to the JudgeClient."""

    def create_file(self, name: str, data: IO[bytes], purpose: str) -> dict[str, Any]:
        """Upload ``data`` (streamed from disk by the SDK's multipart upload) as a JSONL file."""
        files = self.sdk().files
        return files.create(file=(name, data, "application/jsonl"), purpose=purpose).model_dump()  # type: ignore[arg-type]

    def create_batch(self, **body: Any) -> dict[str, Any]:
        return self.sdk().batches.create(**body).model_dump()

    def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        return self.sdk().batches.retrieve(batch_id).model_dump()

    def list_batches(self, limit: int = 100) -> Iterator[dict[str, Any]]:
        """Every batch the server lists, newest first (the SDK's cursor pages through ``after``)."""
        for info in self.sdk().batches.list(limit=limit):
            yield info.model_dump()

    def file_content(self, file_id: str) -> bytes:
        return self.sdk().files.content(file_id).content

    @contextmanager
    def file_chunks(self, file_id: str) -> Iterator[Iterator[bytes]]:
        """A file's content as it streams in: a 20,000-line output file is never held whole."""
        with self.sdk().files.with_streaming_response.content(file_id) as response:
            yield response.iter_bytes()
