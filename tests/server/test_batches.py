"""``/v1/batches`` over real HTTP: the spec's five steps, both status dialects, bad input, faults,
cancel, expiry, pagination and resuming after the server is killed mid-batch."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types import Batch
from openai.types.chat import ChatCompletion
from spec_examples import SPEC_JSONL  # noqa: E402 - tests/server is on sys.path

from pytest_pai_judge.server import Fault, LocalJudgeServer
from pytest_pai_judge.server.store import Store

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
BATCH_ID = re.compile(r"^batch_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
SCORE = re.compile(r"\[\[(\d+)\]\]")
PAI_TERMINAL = {"Succeeded", "Failed", "Expired", "Cancelled"}
OPENAI_TERMINAL = {"completed", "failed", "expired", "cancelled"}


def jsonl(n: int, question: str = "What is 2+2? ({i})", fail_at: frozenset[int] = frozenset()) -> bytes:
    lines = []
    for i in range(n):
        q = "BOOM " + question.format(i=i) if i in fail_at else question.format(i=i)
        body = {"model": "pai-judge", "messages": [{"role": "user", "content": [
            {"mode": "single", "type": "json", "json": {"question": q, "answer": "4"}}]}]}
        lines.append(json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
                                 "body": body}))
    return ("\n".join(lines) + "\n").encode()


def client(server: LocalJudgeServer | str, **kwargs: Any) -> openai.OpenAI:
    url = server if isinstance(server, str) else server.url
    kwargs.setdefault("api_key", "unused")
    return openai.OpenAI(base_url=url, max_retries=0, **kwargs)


def start_batch(c: openai.OpenAI, data: bytes) -> Batch:
    uploaded = c.files.create(file=("input.jsonl", data), purpose="batch")
    return c.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")


def wait_for(c: openai.OpenAI, batch_id: str, done: Any = None, timeout: float = 20.0) -> Batch:
    """Poll retrieve (step 4) until ``done(batch)`` (default: a terminal status)."""
    done = done or (lambda b: b.status in PAI_TERMINAL | OPENAI_TERMINAL)
    deadline = time.monotonic() + timeout
    while True:
        batch = c.batches.retrieve(batch_id)
        if done(batch):
            return batch
        assert time.monotonic() < deadline, f"batch stuck: {batch}"
        time.sleep(0.05)


def read_lines(c: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in c.files.content(file_id).text.splitlines() if line.strip()]


def assert_judged_line(line: dict[str, Any]) -> ChatCompletion:
    """The spec's output line: id, custom_id, response {status_code, request_id, body}, error null."""
    assert set(line) == {"id", "custom_id", "response", "error"} and line["error"] is None
    response = line["response"]
    assert set(response) == {"status_code", "request_id", "body"} and response["status_code"] == 200
    body = dict(response["body"])
    if body.get("service_tier") == "":  # the spec's PAI value, outside the SDK's Literal; the SDK tolerates it
        del body["service_tier"]
    completion = ChatCompletion.model_validate(body)
    assert completion.object == "chat.completion"
    assert SCORE.search(completion.choices[0].message.content or "")
    return completion


# --------------------------------------------------------------------------- the spec's steps


def test_spec_batch_steps_through_the_sdk(make_judge_server, tmp_path: Path) -> None:
    """Steps 1-5 as the vendor's Python samples write them (PAI dialect, doubled Bearer prefix)."""
    server = make_judge_server(token="judge-token")
    c = client(server, api_key="Authorization: Bearer judge-token")
    path = tmp_path / "input.jsonl"
    path.write_bytes(SPEC_JSONL)                                   # step 1
    with open(path, "rb") as fh:
        upload_files = c.files.create(file=fh, purpose="batch")     # step 2
    before = server.stats["batches_created"]
    create_batches = c.batches.create(endpoint="/v1/chat/completions", input_file_id=upload_files.id,
                                      completion_window="24h")      # step 3
    assert BATCH_ID.match(create_batches.id) and server.stats["batches_created"] == before + 1
    assert (create_batches.status, create_batches.object, create_batches.input_file_id) == (
        "Creating", "batch", upload_files.id)
    assert create_batches.request_counts is not None and create_batches.request_counts.total == 2
    assert create_batches.expires_at is None  # null while Creating, as in the spec's step 3 response

    retrieve_batches = wait_for(c, create_batches.id)               # step 4
    assert retrieve_batches.status == "Succeeded"
    assert retrieve_batches.expires_at == create_batches.created_at + 86400  # set once the batch ran
    assert retrieve_batches.output_file_id == "file-batch_output-" + create_batches.id.removeprefix("batch_")
    assert retrieve_batches.error_file_id is None and retrieve_batches.errors is None
    counts = retrieve_batches.request_counts
    assert counts is not None and (counts.total, counts.completed, counts.failed) == (2, 2, 0)
    raw = retrieve_batches.model_dump()
    for field in ("in_process_at", "FinalizingAt", "in_progress_at", "finalizing_at", "completed_at"):
        assert isinstance(raw[field], int), field
    assert raw["in_process_at"] == raw["in_progress_at"] and raw["FinalizingAt"] == raw["finalizing_at"]

    content_files = c.files.content(retrieve_batches.output_file_id)  # step 5
    lines = [json.loads(line) for line in content_files.text.splitlines()]
    assert [line["custom_id"] for line in lines] == ["request-1", "request-2"]
    models = [assert_judged_line(line).model for line in lines]
    assert models == ["pai-judge", "pai-judge-plus"]
    for line in lines:  # the spec's step 5: a bare uuid outside, "chatcmpl-" + that uuid as the body's id
        assert UUID.match(line["id"]) and line["response"]["request_id"] == line["id"]
        assert line["response"]["body"]["id"] == "chatcmpl-" + line["id"]
    output = c.files.retrieve(retrieve_batches.output_file_id)
    assert (output.purpose, output.bytes) == ("batch_output", len(content_files.content))


def test_spec_batch_steps_over_raw_http(make_judge_server) -> None:
    """The spec's curl commands: ``-F`` upload, ``-d`` create (no JSON content type), GET status and content."""
    server = make_judge_server(token="judge-token")
    headers = {"Authorization": "Bearer judge-token"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        assert http.get("/batches", headers={"Authorization": "Bearer wrong"}).status_code == 401
        up = http.post("/files", data={"purpose": "batch"}, files={"file": ("input.jsonl", SPEC_JSONL)})
        assert up.status_code == 200, up.text
        create = http.post("/batches", content=json.dumps({"input_file_id": up.json()["id"],
                                                           "endpoint": "/v1/chat/completions",
                                                           "completion_window": "24h"}),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert create.status_code == 200, create.text
        batch = create.json()
        spec_fields = {"id", "object", "endpoint", "errors", "input_file_id", "completion_window", "status",
                       "output_file_id", "error_file_id", "created_at", "in_process_at", "expires_at",
                       "FinalizingAt", "completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at",
                       "request_counts", "metadata"}
        assert spec_fields <= set(batch) and batch["status"] == "Creating" and batch["expires_at"] is None
        deadline = time.monotonic() + 20
        while batch["status"] not in PAI_TERMINAL:
            assert time.monotonic() < deadline
            time.sleep(0.05)
            batch = http.get(f"/batches/{batch['id']}").json()
        assert batch["status"] == "Succeeded"
        out = http.get(f"/files/{batch['output_file_id']}/content")
        assert out.status_code == 200
        lines = [json.loads(line) for line in out.text.splitlines()]
        assert sorted(line["custom_id"] for line in lines) == ["request-1", "request-2"]
        for line in lines:
            assert_judged_line(line)
            assert line["response"]["body"]["id"] == "chatcmpl-" + line["response"]["request_id"]
        assert batch["expires_at"] == batch["created_at"] + 86400


def test_openai_dialect_strict(make_judge_server) -> None:
    """batches.create / retrieve / list / cancel validate against the SDK's Batch model, OpenAI's words."""
    server = make_judge_server(status_dialect="openai", latency_ms=100, batch_concurrency=1)
    c = client(server, _strict_response_validation=True)
    first = start_batch(c, jsonl(2))
    assert first.status == "validating"
    done = wait_for(c, first.id)
    assert done.status == "completed" and done.request_counts and done.request_counts.completed == 2
    for line in read_lines(c, done.output_file_id):
        assert_judged_line(line)

    second = start_batch(c, jsonl(20))
    wait_for(c, second.id, lambda b: b.status == "in_progress")
    cancelling = c.batches.cancel(second.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    cancelled = wait_for(c, second.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    assert [b.id for b in c.batches.list()] == [second.id, first.id]
    with pytest.raises(openai.BadRequestError) as info:
        c.batches.cancel(first.id)
    assert info.value.code == "BatchNotCancellable" and "completed" in info.value.message


# --------------------------------------------------------------------------- refusals and failures


@pytest.mark.parametrize(("data", "code", "line"), [
    (jsonl(2) + b'{"custom_id": "req-9", "body": \n', "invalid_json_line", 3),
    (jsonl(1) + jsonl(1), "duplicate_custom_id", 2),
    (b'{"custom_id": "req-0"}\n' + jsonl(1), "missing_required_parameter", 1),
    (b"\n\n", "empty_file", None),
])
def test_bad_input_file_fails_the_batch(judge_server: LocalJudgeServer, data: bytes, code: str,
                                        line: int | None) -> None:
    c = client(judge_server)
    batch = wait_for(c, start_batch(c, data).id)
    assert batch.status == "Failed" and batch.failed_at is not None
    assert batch.errors is not None and batch.errors.object == "list" and batch.errors.data
    error = batch.errors.data[0]
    assert (error.code, error.line) == (code, line) and error.message
    assert batch.output_file_id is None and batch.error_file_id is None
    counts = batch.request_counts
    assert counts is not None and (counts.completed, counts.failed) == (0, 0)  # nothing was judged


def test_create_refusals(judge_server: LocalJudgeServer) -> None:
    c = client(judge_server)
    file_id = c.files.create(file=("input.jsonl", SPEC_JSONL), purpose="batch").id
    with pytest.raises(openai.BadRequestError) as info:
        c.batches.create(input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h")
    assert info.value.param == "endpoint" and "/v1/chat/completions" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        c.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                         completion_window="48h")  # type: ignore[arg-type]
    assert info.value.param == "completion_window" and "24h" in info.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        c.batches.create(input_file_id="file-batch-" + "0" * 32, endpoint="/v1/chat/completions",
                         completion_window="24h")
    assert missing.value.code == "FileNotFound"
    with pytest.raises(openai.NotFoundError):
        c.batches.retrieve("batch_nope")
    with httpx.Client(base_url=judge_server.url) as http:
        assert http.post("/batches", content=b"{not json").status_code == 402


def test_failing_lines_go_to_the_error_file(make_judge_server) -> None:
    """A fault pattern fails its line with the documented code; the other lines still succeed."""
    server = make_judge_server(faults=[Fault("BOOM", "500")])
    c = client(server)
    batch = wait_for(c, start_batch(c, jsonl(5, fail_at=frozenset({1, 3}))).id)
    assert batch.status == "Succeeded"
    counts = batch.request_counts
    assert counts is not None and (counts.total, counts.completed, counts.failed) == (5, 3, 2)
    ok = read_lines(c, batch.output_file_id)
    assert [line["custom_id"] for line in ok] == ["req-0", "req-2", "req-4"]
    errors = read_lines(c, batch.error_file_id)
    assert [line["custom_id"] for line in errors] == ["req-1", "req-3"]
    for line in errors:
        assert line["error"]["code"] == "ModelServiceFailed" and "BOOM" in line["error"]["message"]
        response = line["response"]
        assert response["status_code"] == 500 and response["body"]["error"]["code"] == "ModelServiceFailed"
        assert response["request_id"] in response["body"]["error"]["message"]
    assert server.stats["fault_500"] == 2


# --------------------------------------------------------------------------- cancel, expiry, lists


def test_cancel_keeps_judged_lines_and_runs_no_more(make_judge_server) -> None:
    server = make_judge_server(latency_ms=150, batch_concurrency=1)
    c = client(server)
    batch = start_batch(c, jsonl(12))
    wait_for(c, batch.id, lambda b: b.request_counts is not None and b.request_counts.completed >= 2)
    assert c.batches.cancel(batch.id).status == "Cancelling"
    cancelled = wait_for(c, batch.id)
    assert cancelled.status == "Cancelled" and cancelled.cancelled_at is not None
    assert c.batches.cancel(batch.id).status == "Cancelled"  # cancelling again is harmless
    judged = server.stats["batch_lines_judged"]
    counts = cancelled.request_counts
    assert counts is not None and 2 <= counts.completed < 12 and judged == counts.completed + counts.failed
    lines = read_lines(c, cancelled.output_file_id)
    assert [line["custom_id"] for line in lines] == [f"req-{i}" for i in range(counts.completed)]
    time.sleep(0.4)
    assert server.stats["batch_lines_judged"] == judged


def test_window_passing_expires_the_batch(make_judge_server) -> None:
    server = make_judge_server(latency_ms=250, batch_concurrency=1, batch_window_s=0.9)
    c = client(server)
    batch = wait_for(c, start_batch(c, jsonl(8)).id)
    assert batch.status == "Expired" and batch.expired_at is not None
    done = read_lines(c, batch.output_file_id)
    expired = read_lines(c, batch.error_file_id)
    assert 1 <= len(done) < 8 and all(line["error"] is None for line in done)
    assert {line["error"]["code"] for line in expired} == {"batch_expired"}
    assert sorted(line["custom_id"] for line in done + expired) == sorted(f"req-{i}" for i in range(8))
    counts = batch.request_counts
    assert counts is not None and (counts.completed, counts.failed) == (len(done), len(expired))


def test_batches_list_pagination(judge_server: LocalJudgeServer) -> None:
    c = client(judge_server)
    file_id = c.files.create(file=("input.jsonl", SPEC_JSONL), purpose="batch").id
    ids = [c.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h").id
           for _ in range(5)]
    listed = [b.id for b in c.batches.list(limit=2)]  # auto-pagination over 2-item pages
    assert [i for i in listed if i in ids] == ids[::-1]
    page = c.batches.list(limit=2, after=ids[-1])
    assert [b.id for b in page.data] == ids[-2:-4:-1]


# --------------------------------------------------------------------------- restart mid-batch


def persisted_results(data_dir: Path, batch_id: str) -> int:
    """How many lines of the batch a (dead) server had committed, read straight from its store."""
    store = Store(data_dir)
    store.open()
    try:
        return sum(1 for _ in store.results(batch_id))
    finally:
        store.close()


def assert_resumed_output(c: openai.OpenAI, batch: Batch, n: int) -> None:
    assert batch.status == "Succeeded", batch
    lines = read_lines(c, batch.output_file_id)
    assert Counter(line["custom_id"] for line in lines) == Counter(f"req-{i}" for i in range(n))
    assert [line["custom_id"] for line in lines] == [f"req-{i}" for i in range(n)]  # input order
    for line in lines:
        assert_judged_line(line)


def test_embedded_server_stopped_mid_batch_resumes(tmp_path: Path) -> None:
    n = 16
    with LocalJudgeServer(data_dir=tmp_path, latency_ms=150, batch_concurrency=2) as first:
        c = client(first)
        batch = start_batch(c, jsonl(n))
        wait_for(c, batch.id, lambda b: b.request_counts is not None and b.request_counts.completed >= 4)
    done = persisted_results(tmp_path, batch.id)
    assert 4 <= done < n
    with LocalJudgeServer(data_dir=tmp_path, latency_ms=150, batch_concurrency=2) as second:
        c = client(second)
        finished = wait_for(c, batch.id)
        assert_resumed_output(c, finished, n)
        assert second.stats["batch_lines_judged"] == n - done
        assert second.stats["batches_created"] == 0


def _start_subprocess(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_pai_judge.server", "--data-dir", str(data_dir), "--latency-ms", "200",
         "--port", "0", "--batch-concurrency", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "JUDGE_MODEL_TOKEN": ""})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+/v1)", line)
    if not match:
        _end(proc, signal.SIGKILL)
        pytest.fail(f"server did not start: {line!r}")
    return proc, match.group(1)


def _end(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    proc.send_signal(sig)
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def test_killed_server_resumes_without_rejudging(tmp_path: Path) -> None:
    """kill -9 mid-batch, restart on the same data dir: done lines are kept, only the rest are judged."""
    n = 16
    proc, url = _start_subprocess(tmp_path)
    try:
        c = client(url)
        batch = start_batch(c, jsonl(n))
        wait_for(c, batch.id, lambda b: b.request_counts is not None and b.request_counts.completed >= 4)
    finally:
        _end(proc, signal.SIGKILL)
    done = persisted_results(tmp_path, batch.id)
    assert 4 <= done < n
    proc, url = _start_subprocess(tmp_path)
    try:
        c = client(url)
        finished = wait_for(c, batch.id)
        assert_resumed_output(c, finished, n)
        stats = httpx.get(url.removesuffix("/v1") + "/_pai_judge/stats").json()
        assert stats["batch_lines_judged"] == n - done
        assert stats["judgements"] == n - done
    finally:
        _end(proc, signal.SIGTERM)
