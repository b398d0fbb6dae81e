"""Fuzz: 2,000 random bad requests across every route; none may get a 5xx or show a traceback.

Every route (chat completions; files upload / list / get / content / delete; batches create /
list / get / cancel; models; stats; unknown paths) gets random methods, headers, query strings and
bodies: valid requests with random mutations (wrong types, huge numbers, NaN / Infinity, blank and
oversize strings, deep nesting, lone surrogates), truncated JSON, non-JSON bytes, UTF-16, a BOM,
wrong content types and multipart garbage. Every error must be a JSON error envelope, the
batches the fuzz manages to create must not fail inside the server, and the server must log no
error (an unhandled exception, a crashed engine or batch).

Seeded: the seed is printed (``-s`` shows it, and every failure message quotes it); set
``PAI_JUDGE_FUZZ_SEED`` to replay a run. Bounded: it stops at its deadline (well under a minute on
two busy cores; ~10 s usually) and asserts it still sent at least 1,000 requests.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from pytest_pai_judge.server import LocalJudgeServer

REQUESTS = 2000
MIN_REQUESTS = 1000
DEADLINE_S = 45.0
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "FUZZ"]
SURROGATE = "<<lone-surrogate>>"
"""Replaced by the JSON escape ``\\ud800`` after serialising (json.dumps cannot write a lone one)."""

GOOD_LINE = {"custom_id": "good-0", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "pai-judge", "messages": [{"role": "user", "content": [
                 {"mode": "single", "type": "json", "json": {"question": "What is 2+2?", "answer": "4"}}]}]}}


def chat_body(rng: random.Random) -> dict[str, Any]:
    """A valid chat request of one of the three shapes (single, pairwise, custom template)."""
    shape = rng.choice(["single", "pairwise", "custom"])
    if shape == "custom":
        messages: list[Any] = [{"role": "system", "content": "You are a judge. Score 1-5 as [[n]]."},
                               {"role": "user", "content": "Q: What is 2+2?\nA: 4"}]
    else:
        fields = {"question": "What is 2+2?", "answer": "4", "ref_answer": "4"} if shape == "single" else \
            {"question": "Capital of France?", "answer1": "Paris", "answer2": "Lyon"}
        messages = [{"role": "user", "content": [{"mode": shape, "type": "json", "json": fields}]}]
    body: dict[str, Any] = {"model": rng.choice(["pai-judge", "pai-judge-plus"]), "messages": messages}
    for name, value in (("temperature", 0.3), ("n", 2), ("max_tokens", 256), ("seed", 7), ("stream", True)):
        if rng.random() < 0.2:
            body[name] = value
    return body


def nested(rng: random.Random) -> Any:
    levels = rng.choice([58, 59, 60, 64, 200])  # deeper than json.dumps can write: see encode()
    value: Any = rng.choice([1, "x", None])
    for _ in range(levels):
        value = [value] if rng.random() < 0.5 else {"k": value}
    return value


def odd_value(rng: random.Random) -> Any:
    return rng.choice([
        None, True, False, 0, -1, 1.5, 129, 10**30, -(10**30), 2**64, 1e308, float("nan"), float("inf"),
        -float("inf"), "", "   ", "x" * rng.choice([1, 300]), "x" * 200_001, SURROGATE, "a" + SURROGATE + "b",
        "\x00", "🙂", "回答数学类问题", [], {}, [1, "a", None], {"type": "json"}, "single", "pairwise",
        "pai-judge", {"type": "xml"}, ["\n"], 3.0, "10",
    ]) if rng.random() < 0.9 else nested(rng)


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a member of ``value`` (dict keys, list indices)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, sub in value.items():
            out += paths_of(sub, (*prefix, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            out += paths_of(sub, (*prefix, i))
    return out


def mutate(rng: random.Random, body: Any) -> Any:
    """1-3 random changes: replace a member, drop it, add an odd key, or replace the whole body."""
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.05:
            return odd_value(rng)
        path = rng.choice(paths_of(body))
        if not path:
            continue
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        action = rng.random()
        if action < 0.6:
            parent[path[-1]] = odd_value(rng)
        elif action < 0.8 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rng.choice(["extra", "n", "stop", "user", "logit_bias", "tools", SURROGATE])] = odd_value(rng)
    return body


def encode(rng: random.Random, value: Any) -> bytes:
    """``value`` as request bytes: JSON (lone surrogates escaped), often damaged or re-encoded."""
    text = json.dumps(value).replace(SURROGATE, "\\ud800")
    damage = rng.random()
    if damage < 0.04 and text.startswith("{"):
        levels = rng.choice([990, 100_000])
        return ('{"deep": ' + "[" * levels + "]" * levels + ", " + text[1:]).encode()
    if damage < 0.12:
        return text[: rng.randint(0, max(0, len(text) - 1))].encode()  # truncated JSON
    if damage < 0.16:
        return text.encode("utf-16")
    if damage < 0.19:
        return b"\xef\xbb\xbf" + text.encode()
    if damage < 0.23:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
    if damage < 0.25:
        return text.encode().replace(b"4", b"\xed\xa0\x80")  # raw surrogate bytes: not UTF-8
    if damage < 0.27:
        return b"1" * 5000  # beyond Python's int-to-str digit limit
    return text.encode()


def multipart(rng: random.Random) -> tuple[bytes, str]:
    """A multipart body for ``POST /v1/files``: sometimes valid, mostly broken in some way."""
    boundary = rng.choice(["fuzzboundary", "x" * 70, ""])
    if rng.random() < 0.35:  # a good upload, whose lines' bodies may be bad: batches to run
        lines = [json.dumps({**GOOD_LINE, "custom_id": f"line-{i}",
                             "body": mutate(rng, copy.deepcopy(GOOD_LINE["body"])) if rng.random() < 0.5 else GOOD_LINE["body"]})
                 for i in range(rng.randint(1, 3))]
        content = "\n".join(lines).replace(SURROGATE, "\\ud800").encode()
        return (b'--fuzz\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
                b'--fuzz\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n\r\n'
                + content + b"\r\n--fuzz--\r\n", "multipart/form-data; boundary=fuzz")
    lines = [json.dumps(GOOD_LINE), json.dumps({**GOOD_LINE, "custom_id": "dup" if rng.random() < 0.5 else "b"}),
             "{broken", json.dumps({**GOOD_LINE, "body": odd_value(rng)}).replace(SURROGATE, "\\ud800")]
    content = "\n".join(rng.sample(lines, rng.randint(0, len(lines)))).encode()
    parts = []
    for name in rng.sample(["file", "purpose", "other", "file"], rng.randint(0, 4)):
        if name == "file":
            filename = rng.choice(["in.jsonl", "in.txt", "", "../../x.jsonl", "a" * 300 + ".jsonl", "é.jsonl"])
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                         f"Content-Type: application/jsonl\r\n\r\n".encode() + content + b"\r\n")
        else:
            value = rng.choice(["batch", "fine-tune", "", "x" * 70_000])
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    if rng.random() < 0.2:
        body = body[: rng.randint(0, len(body))]
    if rng.random() < 0.1:
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
    content_type = rng.choice([f"multipart/form-data; boundary={boundary}", "multipart/form-data",
                               "application/json", "text/plain", f"multipart/mixed; boundary={boundary}"])
    return body, content_type


def some_id(rng: random.Random, known: list[str], prefix: str) -> str:
    if known and rng.random() < 0.5:
        return rng.choice(known)
    return rng.choice([prefix + "nope", "", "%00", "%ff%fe", "%ed%a0%80", "..%2F..%2Fetc%2Fpasswd", "x" * 3000,
                       "回答", "a b", "%22%27", prefix + "🙂"])


def query(rng: random.Random) -> dict[str, str]:
    q: dict[str, str] = {}
    for name in ("limit", "after", "order", "purpose"):
        if rng.random() < 0.3:
            q[name] = rng.choice(["", "0", "-1", "1", "100", "101", "1e9", "abc", "9" * 40, "desc", "asc", "batch",
                                  "file-batch-nope", "\u00e9", "\x7f"])
    return q


def headers(rng: random.Random, content_type: str | None) -> dict[str, str]:
    h: dict[str, str] = {}
    if content_type is not None:
        h["Content-Type"] = content_type
    if rng.random() < 0.3:
        h["Content-Type"] = rng.choice(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                        "multipart/form-data", "application/json; charset=latin-1", "", "*/*;;;"])
    if rng.random() < 0.2:
        h["Authorization"] = rng.choice(["Bearer", "Bearer x", "Basic abc", "Bearer Authorization: Bearer x", "x"])
    if rng.random() < 0.1:
        h["Accept"] = rng.choice(["application/binary", "text/event-stream", "*/*", "nonsense"])
    if rng.random() < 0.05:
        h["Content-Encoding"] = "gzip"
    if rng.random() < 0.05:
        h["Expect"] = "100-continue"
    return h


def build(rng: random.Random, files: list[str], batches: list[str]) -> tuple[str, str, dict[str, str], dict[str, str],
                                                                             bytes | None]:
    """One random request: method, path, query, headers, body."""
    route = rng.choice(["chat"] * 6 + ["upload"] * 2 + ["batch"] * 2 + [
        "files", "file", "content", "delete", "batches", "get_batch", "cancel", "models", "model", "stats",
        "unknown"])
    body: bytes | None = None
    content_type: str | None = None
    if route == "chat":
        method, path = "POST", "/v1/chat/completions"
        body, content_type = encode(rng, mutate(rng, chat_body(rng))), "application/json"
    elif route == "upload":
        method, path = "POST", "/v1/files"
        body, content_type = multipart(rng)
    elif route == "batch":
        method, path = "POST", "/v1/batches"
        create = {"input_file_id": some_id(rng, files, "file-batch-"), "endpoint": "/v1/chat/completions",
                  "completion_window": "24h"}
        if rng.random() < 0.3:
            create["metadata"] = {"k": "v"}
        body, content_type = encode(rng, mutate(rng, create) if rng.random() < 0.7 else create), None
    elif route in ("files", "batches"):
        method, path = "GET", f"/v1/{route}"
    elif route in ("file", "content", "delete"):
        file_id = some_id(rng, files, "file-batch-")
        method = "DELETE" if route == "delete" else "GET"
        path = f"/v1/files/{file_id}" + ("/content" if route == "content" else "")
    elif route in ("get_batch", "cancel"):
        batch_id = some_id(rng, batches, "batch_")
        method = "POST" if route == "cancel" else "GET"
        path = f"/v1/batches/{batch_id}" + ("/cancel" if route == "cancel" else "")
    elif route == "models":
        method, path = "GET", "/v1/models"
    elif route == "model":
        method, path = "GET", "/v1/models/" + rng.choice(["pai-judge", "gpt-4o", "a/b/c", "%ed%a0%80", "x" * 2000])
    elif route == "stats":
        method, path = "GET", "/_pai_judge/stats"
    else:
        method, path = "GET", rng.choice(["/", "/v1", "/v1/", "/v2/chat/completions", "/v1/chat", "/_pai_judge",
                                          "/v1/files/a/b/c", "/v1/batches/x/cancel/y"])
    if rng.random() < 0.15:
        method = rng.choice(METHODS)
        if body is None and rng.random() < 0.5:
            body = encode(rng, mutate(rng, chat_body(rng)))
    return method, path, query(rng), headers(rng, content_type), body


def test_random_bad_requests_never_get_a_5xx(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    seed = int(os.environ.get("PAI_JUDGE_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    print(f"fuzz seed: {seed} (replay with PAI_JUDGE_FUZZ_SEED={seed})")
    rng = random.Random(seed)
    problems: list[str] = []
    statuses: Counter[int] = Counter()
    sent = 0
    with LocalJudgeServer(data_dir=tmp_path, body_timeout_s=2.0, batch_concurrency=2) as server, \
            httpx.Client(base_url=server.url.removesuffix("/v1"), timeout=30) as http:
        files = [http.post("/v1/files", data={"purpose": "batch"},
                           files={"file": ("in.jsonl", json.dumps(GOOD_LINE).encode())}).json()["id"]]
        batches = [http.post("/v1/batches", json={"input_file_id": files[0], "endpoint": "/v1/chat/completions",
                                                  "completion_window": "24h"}).json()["id"]]
        deadline = time.monotonic() + DEADLINE_S
        while sent < REQUESTS and time.monotonic() < deadline:
            method, path, params, hdrs, body = build(rng, files, batches)
            where = f"#{sent} {method} {path} {params} {hdrs} body={body[:200] if body else body!r}"
            sent += 1
            try:
                response = http.request(method, path, params=params, headers=hdrs, content=body)
            except httpx.HTTPError as exc:
                problems.append(f"{where}: {type(exc).__name__}: {exc}")
                continue
            statuses[response.status_code] += 1
            text = response.text
            if response.status_code >= 500 or "Traceback" in text:
                problems.append(f"{where}: {response.status_code} {text[:300]}")
            elif response.status_code >= 400 and method != "HEAD":
                try:
                    error = response.json()["error"]
                    assert error["code"] and error["message"]
                except (ValueError, KeyError, TypeError, AssertionError):
                    problems.append(f"{where}: {response.status_code} without a JSON error envelope: {text[:300]}")
            elif response.status_code == 200 and method == "POST" and path in ("/v1/files", "/v1/batches"):
                (files if path == "/v1/files" else batches).append(response.json()["id"])
        problems += batch_problems(http, batches)
    print(f"{sent} requests, statuses {dict(sorted(statuses.items()))}, {len(batches)} batches created")
    assert sent >= MIN_REQUESTS, f"seed {seed}: only {sent} requests before the deadline"
    assert not problems, f"seed {seed}: {len(problems)} of {sent} requests went wrong:\n" + "\n".join(problems[:20])
    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, f"seed {seed}: the server logged errors:\n" + "\n".join(errors[:20])


def batch_problems(http: httpx.Client, batch_ids: list[str]) -> list[str]:
    """The batches the fuzz created must end without a failure inside the server (no 5xx line, no internal_error)."""
    problems = []
    deadline = time.monotonic() + 10
    for batch_id in batch_ids:
        batch = http.get(f"/v1/batches/{batch_id}").json()
        while batch["status"] not in ("Succeeded", "Failed", "Expired", "Cancelled") and time.monotonic() < deadline:
            time.sleep(0.05)
            batch = http.get(f"/v1/batches/{batch_id}").json()
        errors = (batch.get("errors") or {}).get("data") or []
        if any(e.get("code") == "internal_error" for e in errors):
            problems.append(f"batch {batch_id} failed inside the server: {errors}")
        if batch["error_file_id"]:
            for line in http.get(f"/v1/files/{batch['error_file_id']}/content").text.splitlines():
                status = (json.loads(line).get("response") or {}).get("status_code", 0)
                if status >= 500:
                    problems.append(f"batch {batch_id}: a line got {status}: {line[:300]}")
    return problems


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzz_requests_are_reproducible(seed):
    """The same seed builds the same requests (what makes a printed seed worth replaying)."""
    first, second = random.Random(seed), random.Random(seed)
    assert [build(first, ["file-batch-A"], ["batch_A"]) for _ in range(20)] == \
        [build(second, ["file-batch-A"], ["batch_A"]) for _ in range(20)]
