"""``/v1/files`` over real HTTP: the spec's upload step, the OpenAI shapes, the 10 MB limit, pagination, persistence."""

from __future__ import annotations

import re

import httpx
import openai
import pytest
from spec_examples import SPEC_JSONL  # noqa: E402 - tests/server is on sys.path

from pytest_pai_judge import protocol
from pytest_pai_judge.server import LocalJudgeServer

FILE_ID = re.compile(r"^file-batch-[0-9A-F]{32}$")


def client(server: LocalJudgeServer, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(api_key="unused", base_url=server.url, max_retries=0, **kwargs)  # type: ignore[arg-type]


def test_spec_upload_step(judge_server: LocalJudgeServer, tmp_path) -> None:
    """Step 2 of the spec through the SDK, with a real file opened from disk as in the sample."""
    path = tmp_path / "input.jsonl"
    path.write_bytes(SPEC_JSONL)
    c = client(judge_server)
    created_before = judge_server.stats["files_created"]
    with open(path, "rb") as fh:
        uploaded = c.files.create(file=fh, purpose="batch")
    assert FILE_ID.match(uploaded.id)
    assert (uploaded.object, uploaded.bytes, uploaded.filename, uploaded.purpose, uploaded.status) == (
        "file", len(SPEC_JSONL), "input.jsonl", "batch", "processed")
    assert judge_server.stats["files_created"] == created_before + 1
    assert c.files.retrieve(uploaded.id) == uploaded
    assert c.files.content(uploaded.id).content == SPEC_JSONL


def test_files_openai_dialect_strict(make_judge_server) -> None:
    """create / retrieve / list / content / delete all validate against the SDK's own models."""
    server = make_judge_server(status_dialect="openai")
    c = client(server, _strict_response_validation=True)
    uploaded = c.files.create(file=("input.jsonl", SPEC_JSONL), purpose="batch")
    assert c.files.retrieve(uploaded.id).id == uploaded.id
    page = c.files.list()
    assert [f.id for f in page.data] == [uploaded.id] and page.has_more is False
    assert c.files.content(uploaded.id).read() == SPEC_JSONL
    deleted = c.files.delete(uploaded.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (uploaded.id, "file", True)
    with pytest.raises(openai.NotFoundError) as info:
        c.files.retrieve(uploaded.id)
    assert info.value.code == "FileNotFound"
    with pytest.raises(openai.NotFoundError):
        c.files.content(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        c.files.delete(uploaded.id)
    assert c.files.list().data == []


def test_curl_like_upload_and_download(judge_server: LocalJudgeServer) -> None:
    """The spec's curl: ``-F purpose="batch" -F file="@input.jsonl"``, then the content as raw bytes."""
    with httpx.Client(base_url=judge_server.url) as http:
        r = http.post("/files", data={"purpose": "batch"},
                      files={"file": ("input.jsonl", SPEC_JSONL, "application/octet-stream")})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) >= {"id", "object", "bytes", "created_at", "filename", "purpose"}
        assert FILE_ID.match(body["id"]) and body["bytes"] == len(SPEC_JSONL)
        content = http.get(f"/files/{body['id']}/content", headers={"Accept": "application/binary"})
        assert content.status_code == 200 and content.content == SPEC_JSONL


def test_file_over_10mb_refused(make_judge_server) -> None:
    """Exactly 10 MB is accepted; one byte more is a 400 naming the limit and the size, and nothing is kept."""
    server = make_judge_server()
    c = client(server)
    line = b'{"custom_id": "x", "body": {}}'
    at_limit = (line + b" " * (protocol.MAX_BATCH_FILE_BYTES - len(line) - 1) + b"\n")
    assert len(at_limit) == protocol.MAX_BATCH_FILE_BYTES
    ok = c.files.create(file=("big.jsonl", at_limit), purpose="batch")
    assert ok.bytes == protocol.MAX_BATCH_FILE_BYTES
    too_big = at_limit + b"\n"
    with pytest.raises(openai.BadRequestError) as info:
        c.files.create(file=("big.jsonl", too_big), purpose="batch")
    err = info.value
    assert err.code == "FileTooLarge" and err.param == "file"
    assert "10 MB" in err.message and str(len(too_big)) in err.message
    assert [f.id for f in c.files.list().data] == [ok.id]
    files_dir = server.config.data_dir / "files"
    assert sorted(p.name for p in files_dir.iterdir()) == [f"{ok.id}.jsonl"]


@pytest.mark.parametrize(("purpose", "filename", "param", "needle"), [
    ("fine-tune", "input.jsonl", "purpose", "'batch'"),
    ("batch", "input.json", "file", ".jsonl"),
    ("batch", "input.txt", "file", ".jsonl"),
])
def test_upload_refusals(judge_server: LocalJudgeServer, purpose: str, filename: str, param: str,
                         needle: str) -> None:
    with httpx.Client(base_url=judge_server.url) as http:
        r = http.post("/files", data={"purpose": purpose}, files={"file": (filename, SPEC_JSONL)})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == param and needle in error["message"]


def test_upload_missing_parts(judge_server: LocalJudgeServer) -> None:
    with httpx.Client(base_url=judge_server.url) as http:
        no_file = http.post("/files", data={"purpose": "batch"}, files={"other": ("x.txt", b"")})
        no_purpose = http.post("/files", files={"file": ("input.jsonl", SPEC_JSONL)})
        not_multipart = http.post("/files", json={"purpose": "batch"})
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    assert no_purpose.status_code == 400 and no_purpose.json()["error"]["param"] == "purpose"
    assert not_multipart.status_code == 400 and "multipart/form-data" in not_multipart.json()["error"]["message"]


def test_list_pagination(make_judge_server) -> None:
    """25 files, pages of 10: auto-pagination ends with all 25, newest first; ``after`` and ``order`` are honoured."""
    server = make_judge_server()
    c = client(server)
    ids = [c.files.create(file=(f"f{i}.jsonl", SPEC_JSONL), purpose="batch").id for i in range(25)]
    newest_first = ids[::-1]

    first = c.files.list(limit=10)
    assert [f.id for f in first.data] == newest_first[:10] and first.has_more is True
    assert [f.id for f in c.files.list(limit=10)] == newest_first  # auto-pagination terminates

    with httpx.Client(base_url=server.url) as http:
        page = http.get("/files", params={"limit": 10, "after": newest_first[19]}).json()
        assert page["object"] == "list" and page["has_more"] is False
        assert [f["id"] for f in page["data"]] == newest_first[20:]
        assert (page["first_id"], page["last_id"]) == (newest_first[20], newest_first[24])
        assert len(http.get("/files").json()["data"]) == 20  # default limit
        asc = http.get("/files", params={"order": "asc", "limit": 3}).json()
        assert [f["id"] for f in asc["data"]] == ids[:3]
        assert http.get("/files", params={"limit": 0}).status_code == 400
        assert http.get("/files", params={"after": "file-batch-NOPE"}).status_code == 400
        assert len(http.get("/files", params={"limit": 1000}).json()["data"]) == 25  # clamped to 100

    c.files.delete(newest_first[10])  # a deleted id still works as a cursor
    assert [f.id for f in c.files.list(limit=5, after=newest_first[10])] == newest_first[11:]


def test_uploads_survive_restart(tmp_path) -> None:
    """An answered upload is on disk and in SQLite: a new server on the same data dir serves it."""
    with LocalJudgeServer(data_dir=tmp_path) as first:
        uploaded = client(first).files.create(file=("input.jsonl", SPEC_JSONL), purpose="batch")
    with LocalJudgeServer(data_dir=tmp_path) as second:
        c = client(second)
        assert c.files.retrieve(uploaded.id) == uploaded
        assert c.files.content(uploaded.id).content == SPEC_JSONL
