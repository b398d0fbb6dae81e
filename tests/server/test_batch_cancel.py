"""Cancelling a running batch: it ends Cancelled (never Succeeded), and nothing is judged after the cancel.

The cancel's answer carries the counts as they are at that moment; they are final: lines in flight
are dropped, not recorded, so ``completed + failed`` is the number of lines actually in the output
and error files, and no line is judged once the cancel has been seen.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from pytest_pai_judge.server import LocalJudgeServer

TERMINAL = {"Succeeded", "Failed", "Expired", "Cancelled", "completed", "failed", "expired", "cancelled"}


def jsonl(n: int) -> bytes:
    body = {"model": "pai-judge", "messages": [{"role": "user", "content": [
        {"mode": "single", "type": "json", "json": {"question": "What is 2+2?", "answer": "4"}}]}]}
    return "".join(json.dumps({"custom_id": f"req-{i}", "body": body}) + "\n" for i in range(n)).encode()


def lines_of(http: httpx.Client, file_id: object) -> list[dict[str, object]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in http.get(f"/files/{file_id}/content").text.splitlines() if line.strip()]


def run_and_cancel(server: LocalJudgeServer, total: int, after: int) -> tuple[dict, dict, list, list]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        up = http.post("/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", jsonl(total))}).json()
        batch = http.post("/batches", json={"input_file_id": up["id"], "endpoint": "/v1/chat/completions",
                                            "completion_window": "24h"}).json()
        deadline = time.monotonic() + 30
        while batch["request_counts"]["completed"] < after:
            assert time.monotonic() < deadline and batch["status"] not in TERMINAL, batch
            batch = http.get(f"/batches/{batch['id']}").json()
        cancel = http.post(f"/batches/{batch['id']}/cancel")
        assert cancel.status_code == 200, cancel.text
        cancelled = cancel.json()
        judged_at_cancel = server.stats["batch_lines_judged"]
        while batch["status"] not in TERMINAL:
            assert time.monotonic() < deadline, batch
            time.sleep(0.02)
            batch = http.get(f"/batches/{batch['id']}").json()
        assert server.stats["batch_lines_judged"] == judged_at_cancel  # nothing judged after the cancel
        return cancelled, batch, lines_of(http, batch["output_file_id"]), lines_of(http, batch["error_file_id"])


@pytest.mark.parametrize("dialect,cancelling,final", [("pai", "Cancelling", "Cancelled"),
                                                      ("openai", "cancelling", "cancelled")])
def test_cancel_mid_run_ends_cancelled_with_true_counts(make_judge_server, dialect, cancelling, final):
    server = make_judge_server(status_dialect=dialect)
    cancelled, batch, done, failed = run_and_cancel(server, total=2000, after=100)
    assert cancelled["status"] == cancelling
    assert batch["status"] == final, batch["request_counts"]
    counts = batch["request_counts"]
    assert counts == cancelled["request_counts"]  # the counts the cancel answered with are final
    assert counts["total"] == 2000 and 100 <= counts["completed"] < 2000
    assert (counts["completed"], counts["failed"]) == (len(done), len(failed))
    assert len({line["custom_id"] for line in done + failed}) == len(done) + len(failed)
