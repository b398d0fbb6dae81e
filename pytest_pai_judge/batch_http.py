"""Batch mode's files and batches calls, made over the SDK's own HTTP library without importing the SDK.

Why: batch mode makes five kinds of plain JSON / multipart call (upload a file; create, retrieve
and list batches; download a file). Importing the ``openai`` SDK for them costs pytest ~25 MB
(its pydantic types), held for the whole run of a 20,000-test batch suite. Their failure policy is
the SDK's: 408 / 409 / 429 / 5xx answers and connection failures are retried up to
``--judge-retries`` times, with its backoff and ``retry-after`` (up to two minutes); plus
:mod:`.call_policy`'s rule that a POST whose answer timed out is not resent (the server may have
made the file or the job). Failures are the JudgeErrors that :func:`.client.translate_exception`
makes of the SDK's exceptions, so messages and the circuit breaker see the same thing.
"""

from __future__ import annotations

import email.utils
import importlib
import json
import math
import random
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import IO, Any

from . import errors

INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
MAX_RETRY_AFTER_S = 120.0
"""A server-directed wait the SDK honours; a longer one is not retried at all."""
TIMEOUT_HINT = "raise --judge-timeout, or check the judge service's load"


def http_library() -> ModuleType:
    """``httpx2`` (what recent openai SDKs are built on) if installed, else ``httpx`` (openai 1.x)."""
    for name in ("httpx2", "httpx"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise errors.JudgeError("batch mode needs httpx (installed with the openai package)")  # pragma: no cover


class BatchAPI:
    """``/v1/files`` and ``/v1/batches`` of one judge service; the answers are plain JSON dicts."""

    def __init__(self, base_url: str, token: str | None, *, timeout: float, max_retries: int) -> None:
        self.lib = lib = http_library()
        self.max_retries = max_retries
        self.http = lib.Client(base_url=base_url.rstrip("/") + "/", timeout=lib.Timeout(timeout),
                               follow_redirects=True,
                               headers={"Authorization": f"Bearer {token or 'no-token'}",
                                        "Accept": "application/json"})

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ the calls

    def create_file(self, name: str, data: IO[bytes], purpose: str) -> dict[str, Any]:
        """Upload ``data`` (streamed, rewound before a retry) as a multipart ``file`` part."""
        def rewind() -> None:
            data.seek(0)

        return self._json("POST", "files", rewind=rewind, data={"purpose": purpose},
                          files={"file": (name, data, "application/jsonl")})

    def create_batch(self, **body: Any) -> dict[str, Any]:
        return self._json("POST", "batches", json=body)

    def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        return self._json("GET", f"batches/{batch_id}")

    def list_batches(self, limit: int = 100) -> Iterator[dict[str, Any]]:
        """Every batch the server lists, newest first, paging with ``after`` as the SDK's cursor does."""
        params: dict[str, Any] = {"limit": limit}
        while True:
            page = self._json("GET", "batches", params=params)
            data = [d for d in page.get("data") or [] if isinstance(d, dict)]
            yield from data
            if page.get("has_more") is False or not data or not data[-1].get("id"):
                return
            params = {"limit": limit, "after": data[-1]["id"]}

    def file_content(self, file_id: str) -> bytes:
        return self._send("GET", f"files/{file_id}/content").content

    @contextmanager
    def file_chunks(self, file_id: str) -> Iterator[Iterator[bytes]]:
        """A file's content as it streams in: a 20,000-line output file is never held whole."""
        response = self._send("GET", f"files/{file_id}/content", stream=True)
        try:
            yield response.iter_bytes()
        finally:
            response.close()

    # ------------------------------------------------------------------ the failure policy

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise errors.ModelServiceFailed(f"the judge's reply is not a JSON object: {response.text[:200]!r}",
                                            status=response.status_code)
        return body

    def _send(self, method: str, path: str, *, stream: bool = False, rewind: Any = None, **kwargs: Any) -> Any:
        """One call with the SDK's retries; raises the JudgeError of the last failure."""
        lib = self.lib
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            if rewind is not None:
                rewind()
            started = time.monotonic()
            try:
                response = self.http.send(self.http.build_request(method, path, **kwargs), stream=stream)
            except lib.TimeoutException as exc:
                if isinstance(exc, lib.ReadTimeout) and method != "GET":
                    raise errors.JudgeTimeout(
                        f"the judge did not answer within {time.monotonic() - started:.3g}s (attempt 1); not "
                        "resent, since the judge may still be working on it", hint=TIMEOUT_HINT) from None
                if not last:
                    time.sleep(retry_delay(attempt, None))
                    continue
                raise errors.JudgeTimeout("the judge did not answer in time", hint=TIMEOUT_HINT) from None
            except (lib.RequestError, ssl.SSLError) as exc:
                if not last:
                    time.sleep(retry_delay(attempt, None))
                    continue
                raise errors.JudgeConnectionError(
                    f"cannot reach the judge: {exc}",
                    hint="check --judge-base-url / JUDGE_MODEL_BASE_URL and the network") from None
            if response.status_code < 400:
                return response
            if not last and should_retry(response.status_code, response.headers):
                response.close()
                time.sleep(retry_delay(attempt, response.headers))
                continue
            response.read()
            response.close()
            raise status_error(response.status_code, response.text)
        raise AssertionError("unreachable")  # pragma: no cover


def status_error(status: int, text: str) -> errors.JudgeError:
    """An error answer as the JudgeError of its PAI code (what ``translate_exception`` makes of the SDK's)."""
    body: Any = text.strip()
    try:
        body = json.loads(body)
    except ValueError:
        pass
    fields = body if isinstance(body, dict) else {}
    err = fields.get("error", fields)
    err = err if isinstance(err, dict) else {}
    message = err.get("message")
    fallback = f"Error code: {status}" + (f" - {message}" if isinstance(message, str) and message else "")
    return errors.from_code(status, err.get("code"), str(message or fallback), err.get("param"))


def retry_after_s(headers: Any) -> float | None:
    """``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date), as the SDK reads them."""
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            delay = float(value)
        except ValueError:
            continue
        if delay == math.inf and value.strip().lower() not in ("inf", "+inf", "infinity", "+infinity"):
            return MAX_RETRY_AFTER_S + 1
        return delay / divisor
    try:
        parsed = email.utils.parsedate_tz(headers.get("retry-after"))
        if parsed is None:
            return None
        return float(email.utils.mktime_tz(parsed) - time.time())
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def should_retry(status: int, headers: Any) -> bool:
    after = retry_after_s(headers)
    if after is not None and math.isfinite(after) and after > MAX_RETRY_AFTER_S:
        return False
    explicit = headers.get("x-should-retry")
    if explicit in ("true", "false"):
        return explicit == "true"
    return status in (408, 409, 429) or status >= 500


def retry_delay(attempt: int, headers: Any) -> float:
    """The wait before retry ``attempt + 1``: the server's ``retry-after``, else backoff with jitter."""
    after = retry_after_s(headers) if headers is not None else None
    if after is not None and math.isfinite(after) and 0 < after <= MAX_RETRY_AFTER_S:
        return after
    return max(0.0, min(INITIAL_RETRY_DELAY_S * 2.0 ** min(attempt, 1000), MAX_RETRY_DELAY_S)
               * (1 - 0.25 * random.random()))
