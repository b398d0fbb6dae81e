"""Finding this cache's batch jobs on the server when the ledger does not know them.

A job can be created and the ledger not written (a SIGKILL in between), or the ledger can be
lost or unreadable. Every job of ours carries ``metadata`` naming the cache and judge it belongs
to (:func:`.ledger.cache_token`), so the jobs of the last completion window that the ledger
neither remembers nor has collected are found by listing the server's batches, and their
requests are read back from their input files. A server that cannot list batches (the spec
names no list route) only costs a warning when the ledger was unreadable.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..batch_calls import BatchAPI
from ..client import translate_exception
from ..request import JudgeRequest
from .batch_files import attribute, key_of
from .ledger import CREATOR, MARKER, BatchLedger

WINDOW_S = 24 * 3600
"""Jobs older than this (the spec's completion window) are not looked for."""
MAX_LISTED = 1000


def find_lost_jobs(api: BatchAPI, ledger: BatchLedger, identity: str, token: str, warnings: list[str]
                   ) -> dict[str, dict[str, Any]]:
    """Ledger entries (``{"requests": {key: request dict}}``) for this cache's jobs the ledger lost."""
    known = set(ledger.entries(identity)) | set(ledger.collected())
    try:
        listed = _list(api)
    except Exception as exc:  # noqa: BLE001 - a server without a list route: nothing to find
        if ledger.problem:
            warnings.append(f"{ledger.problem}; the judge service cannot list batches "
                            f"({translate_exception(exc)}), so its unfinished jobs cannot be found and this run may "
                            "pay for their requests again")
        return {}
    found: dict[str, dict[str, Any]] = {}
    for info in listed:
        metadata = attribute(info, "metadata") or {}
        batch_id = str(attribute(info, "id") or "")
        if not batch_id or batch_id in known or not isinstance(metadata, dict):
            continue
        if metadata.get(MARKER) != CREATOR or metadata.get("cache") != token:
            continue
        requests = _requests_of(api, attribute(info, "input_file_id"))
        if requests is None:
            continue
        found[batch_id] = {"requests": {k: r.to_dict() for k, r in requests.items()}}
        ledger.remember(batch_id, identity, requests)
    if ledger.problem:
        warnings.append(f"{ledger.problem}; found {len(found)} of this cache's batch jobs on the judge service "
                        "by their metadata")
    return found


def _list(api: BatchAPI) -> list[Any]:
    """The server's batches of the last completion window, newest first (as far as it lists them)."""
    cutoff = time.time() - WINDOW_S
    out: list[Any] = []
    for info in api.list_batches(limit=100):  # pages through ``after``, as the SDK's cursor does
        created = attribute(info, "created_at") or 0
        if created and created < cutoff:
            break
        out.append(info)
        if len(out) >= MAX_LISTED:
            break
    return out


def _requests_of(api: BatchAPI, input_file_id: Any) -> dict[str, JudgeRequest] | None:
    """The requests of a job, read back from its input file (None when it cannot be read)."""
    if not input_file_id:
        return None
    try:
        content = api.file_content(str(input_file_id))
    except Exception:  # noqa: BLE001 - a job whose input is gone cannot be matched to requests
        return None
    requests = {}
    for line in content.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            requests[key_of(str(row["custom_id"]))] = JudgeRequest.from_body(row["body"])
        except (ValueError, KeyError, TypeError):
            continue
    return requests
