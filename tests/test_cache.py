"""Unit tests of pytest_pai_judge.cache: modes, xdist-style concurrency, kill -9, broken caches."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pytest_pai_judge.cache import DB_FILENAME, CachedReply, VerdictCache, cache_key, canonical_json

HOST = "aiservice.cn-hangzhou.aliyuncs.com"
REQUEST = {"model": "pai-judge", "mode": "single",
           "json": {"question": "常德德山山有德", "answer": "长沙沙水水无沙", "max_score": 5},
           "params": {"temperature": 0.2, "max_tokens": 2048, "response_format": "text"}}
USAGE = {"prompt_tokens": 790, "completion_tokens": 333, "total_tokens": 1123}


def req(i: int) -> dict:
    return {**REQUEST, "json": {**REQUEST["json"], "question": f"q{i}"}}


def put(cache: VerdictCache, i: int, nodeid: str | None = "t.py::test") -> str:
    key = cache_key(req(i), HOST)
    cache.put(key, raw=f"综合评分为[[{i % 5 + 1}]]", model="pai-judge", usage=USAGE, request=req(i), nodeid=nodeid)
    return key


def rows(db_path: Path, sql: str) -> list:
    with sqlite3.connect(db_path) as db:
        return db.execute(sql).fetchall()


# --------------------------------------------------------------------------- keys


def test_cache_key_is_canonical_and_complete() -> None:
    a = cache_key(REQUEST, HOST)
    assert len(a) == 64 and a == cache_key(dict(reversed(list(REQUEST.items()))), HOST)
    assert a != cache_key({**REQUEST, "model": "pai-judge-plus"}, HOST)
    assert a != cache_key(REQUEST, "localhost")
    assert a != cache_key({**REQUEST, "params": {**REQUEST["params"], "temperature": 0.3}}, HOST)
    assert a != cache_key({**REQUEST, "json": {**REQUEST["json"], "answer": "长沙沙水水无沙 "}}, HOST)
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


@pytest.mark.parametrize("secret", [{"Authorization": "Bearer x"}, {"api_key": "x"}, {"headers": {"X-Api-Key": "x"}},
                                    {"nested": [{"token": "x"}]}, {"apiKey": "x"}])
@pytest.mark.parametrize("mode", ["use", "off", "replay", "refresh"])
def test_credentials_are_refused(tmp_path: Path, secret: dict, mode: str) -> None:
    cache = VerdictCache(tmp_path, mode=mode)  # type: ignore[arg-type]
    bad = {**REQUEST, **secret}
    with pytest.raises(ValueError, match="credential"):
        cache.put("k", raw="[[3]]", model="pai-judge", usage=None, request=bad, nodeid=None)
    with pytest.raises(ValueError, match="credential"):
        cache_key(bad, HOST)
    cache.close()


def test_max_tokens_is_not_a_token() -> None:
    cache_key({"max_tokens": 10, "usage": {"prompt_tokens": 1}}, HOST)


# --------------------------------------------------------------------------- basics and modes


def test_round_trip_and_layout(tmp_path: Path) -> None:
    cache_dir = tmp_path / "root" / ".pai_judge_cache"
    cache = VerdictCache(cache_dir)
    assert not cache_dir.exists()  # lazy: nothing until first use
    key = put(cache, 1, nodeid="tests/test_x.py::test_a")
    got = cache.get(key)
    assert isinstance(got, CachedReply)
    assert (got.key, got.raw, got.model, got.usage) == (key, "综合评分为[[2]]", "pai-judge", USAGE)
    assert got.request == canonical_json(req(1)) and abs(got.created_at - time.time()) < 60
    assert cache.get("missing") is None
    assert (cache_dir / ".gitignore").read_text() == "*\n"
    assert rows(cache_dir / DB_FILENAME, "PRAGMA journal_mode") == [("wal",)]
    assert rows(cache_dir / DB_FILENAME, "SELECT key, nodeid, run_id FROM uses") == [
        (key, "tests/test_x.py::test_a", cache.run_id)]
    put(cache, 1, nodeid=None)  # same key again: replaced, not duplicated
    assert rows(cache_dir / DB_FILENAME, "SELECT count(*) FROM replies") == [(1,)]
    got = cache.get(key)
    cache.close()
    cache.close()
    with VerdictCache(cache_dir) as again:  # another process/run reads it back
        assert again.get(key) == got
    assert cache.warning is None


def test_file_path_and_usage_none(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "d" / "my.sqlite3")
    cache.put("k", raw="x", model="m", usage=None, request={}, nodeid=None)
    assert cache.get("k").usage is None  # type: ignore[union-attr]
    assert (tmp_path / "d" / "my.sqlite3").is_file() and cache.db_path.name == "my.sqlite3"


def test_mode_off_touches_nothing(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "c", mode="off")
    key = put(cache, 1)
    cache.touch(key, "n")
    assert cache.get(key) is None and cache.prune_unused(cache.run_id) == 0
    assert cache.probe() is None and cache.warning is None
    cache.close()
    assert not (tmp_path / "c").exists()


def test_mode_refresh_writes_but_never_reads(tmp_path: Path) -> None:
    key = put(VerdictCache(tmp_path), 1)
    refresh = VerdictCache(tmp_path, mode="refresh")
    assert refresh.get(key) is None
    refresh.put(key, raw="综合评分为[[5]]", model="pai-judge-plus", usage=None, request=req(1), nodeid=None)
    assert refresh.get(key) is None
    got = VerdictCache(tmp_path).get(key)
    assert got is not None and got.raw == "综合评分为[[5]]" and got.model == "pai-judge-plus"


def test_mode_replay_reads_only(tmp_path: Path) -> None:
    writer = VerdictCache(tmp_path)
    key = put(writer, 1)
    writer.close()
    replay = VerdictCache(tmp_path, mode="replay")
    assert replay.get(key) is not None and replay.get(cache_key(req(2), HOST)) is None
    put(replay, 2)  # no-op
    replay.touch(key, "other")  # no-op
    assert replay.prune_unused(replay.run_id) == 0
    replay.close()
    assert rows(tmp_path / DB_FILENAME, "SELECT count(*) FROM replies") == [(1,)]
    assert rows(tmp_path / DB_FILENAME, "SELECT count(*) FROM uses") == [(1,)]
    assert replay.warning is None


def test_replay_without_a_file_warns_and_misses(tmp_path: Path) -> None:
    replay = VerdictCache(tmp_path / "none", mode="replay")
    assert replay.get("k") is None
    assert replay.warning and "none" in replay.warning and "replay" in replay.warning
    assert not (tmp_path / "none").exists()


def test_bad_mode() -> None:
    with pytest.raises(ValueError, match="use, refresh, off, replay"):
        VerdictCache("x", mode="sometimes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- broken caches never raise


def _works_as_off(cache: VerdictCache) -> None:
    key = put(cache, 1)
    cache.touch(key, "n")
    assert cache.get(key) is None
    assert cache.prune_unused(cache.run_id) == 0
    cache.close()


def test_unwritable_directory_warns_and_works_as_off(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cache = VerdictCache(blocker / "cache")  # mkdir fails: a regular file is in the way
    _works_as_off(cache)
    assert cache.warning is not None and str(blocker / "cache") in cache.warning
    first = cache.warning
    _works_as_off(cache)
    assert cache.warning == first  # one message, not one per call
    cache2 = VerdictCache(blocker)  # the cache "dir" is itself a file
    assert cache2.probe() is not None
    _works_as_off(cache2)


def test_corrupt_file_warns_and_is_left_alone(tmp_path: Path) -> None:
    garbage = os.urandom(8192)
    (tmp_path / DB_FILENAME).write_bytes(garbage)
    cache = VerdictCache(tmp_path)
    _works_as_off(cache)
    assert cache.warning is not None
    assert str(tmp_path / DB_FILENAME) in cache.warning and "not a usable SQLite database" in cache.warning
    assert (tmp_path / DB_FILENAME).read_bytes() == garbage


def test_foreign_sqlite_file_warns(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_FILENAME) as db:
        db.execute("CREATE TABLE replies (x)")  # someone else's schema
    cache = VerdictCache(tmp_path)
    _works_as_off(cache)
    assert cache.warning is not None


# --------------------------------------------------------------------------- uses and pruning


def test_prune_unused(tmp_path: Path) -> None:
    run1 = VerdictCache(tmp_path, run_id="run-1")
    k1, k2, k3 = put(run1, 1, "t::a"), put(run1, 2, "t::b"), put(run1, 3, "t::c")
    run1.close()
    run2 = VerdictCache(tmp_path, run_id="run-2")
    assert run2.get(k1) is not None
    run2.touch(k1, "t::a")
    k4 = put(run2, 4, "t::d")
    assert run2.prune_unused("no-such-run") == 0  # a run with no recorded use prunes nothing
    assert run2.prune_unused("run-2") == 2
    assert run2.get(k1) and run2.get(k4) and run2.get(k2) is None and run2.get(k3) is None
    assert sorted(rows(tmp_path / DB_FILENAME, "SELECT nodeid, run_id FROM uses")) == [
        ("t::a", "run-2"), ("t::d", "run-2")]
    assert run2.prune_unused("run-2") == 0


def test_run_id_default_follows_xdist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "abc123")
    assert VerdictCache(tmp_path).run_id == "abc123"
    monkeypatch.delenv("PYTEST_XDIST_TESTRUNUID")
    assert VerdictCache(tmp_path).run_id != VerdictCache(tmp_path).run_id


# --------------------------------------------------------------------------- concurrency and crashes


def _worker(cache: VerdictCache, worker: int, count: int) -> None:
    for i in range(count):
        put(cache, worker * 10_000 + i, nodeid=f"t.py::test[{worker}-{i}]")
    cache.close()


def test_four_processes_write_at_once(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path, run_id="xdist-run")
    put(cache, 999_999)  # the parent opens its connection before forking: children must not share it
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(cache, w, 200)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert cache.warning is None
    for w in range(4):
        for i in range(200):
            got = cache.get(cache_key(req(w * 10_000 + i), HOST))
            assert got is not None and got.raw == f"综合评分为[[{(w * 10_000 + i) % 5 + 1}]]"
    assert rows(tmp_path / DB_FILENAME, "SELECT count(*) FROM replies") == [(801,)]
    assert rows(tmp_path / DB_FILENAME, "SELECT count(*) FROM uses WHERE run_id = 'xdist-run'") == [(801,)]
    assert rows(tmp_path / DB_FILENAME, "PRAGMA integrity_check") == [("ok",)]
    cache.close()


def test_threads_share_one_cache(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path)
    errors: list[BaseException] = []

    def run(t: int) -> None:
        try:
            for i in range(50):
                key = put(cache, t * 1000 + i)
                assert cache.get(key) is not None
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and cache.warning is None
    assert rows(tmp_path / DB_FILENAME, "SELECT count(*) FROM replies") == [(200,)]


KILLED_WRITER = textwrap.dedent("""
    import sys
    from pytest_pai_judge.cache import VerdictCache
    cache = VerdictCache(sys.argv[1])
    i = 0
    while True:
        cache.put(f"key-{i}", raw="x" * 2000 + str(i), model="pai-judge", usage={"total_tokens": i},
                  request={"i": i}, nodeid=f"t::{i}")
        print(i, flush=True)
        i += 1
""")


def test_kill_9_loses_nothing_committed(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    last = -1
    try:
        for line in proc.stdout:
            last = int(line)
            if last >= 300:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL and last >= 300
    assert rows(tmp_path / DB_FILENAME, "PRAGMA integrity_check") == [("ok",)]
    cache = VerdictCache(tmp_path)
    for i in range(last + 1):
        got = cache.get(f"key-{i}")
        assert got is not None and got.raw.endswith(str(i)) and got.usage == {"total_tokens": i}
    put(cache, 1)  # still writable after the crash
    assert cache.warning is None


# --------------------------------------------------------------------------- speed and weight


def test_warm_get_is_fast(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path)
    keys = [put(cache, i) for i in range(20)]
    cache.get(keys[0])
    start = time.perf_counter()
    for i in range(2000):
        assert cache.get(keys[i % 20]) is not None
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"2,000 warm gets took {elapsed:.3f}s"


def test_modules_import_light() -> None:
    """cache and verdict use the stdlib only and pull in nothing heavy (pytest start-up stays fast)."""
    import ast

    import pytest_pai_judge.cache as cache_module
    import pytest_pai_judge.verdict as verdict_module

    for module in (cache_module, verdict_module):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))  # type: ignore[arg-type]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            for name in names:
                assert name.split(".")[0] in sys.stdlib_module_names or name == "__future__", (module.__name__, name)
    code = ("import sys, pytest_pai_judge; before = set(sys.modules); "
            "import pytest_pai_judge.cache, pytest_pai_judge.verdict; added = set(sys.modules) - before; "
            "print(sorted(m for m in added if m.split('.')[0] in ('pandas', 'openai', 'datasets', 'pyarrow', 'httpx')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_parse_memo_is_per_variant_and_dropped_when_the_reply_changes(tmp_path):
    cache = VerdictCache(tmp_path)
    cache.put("k", raw="[[4]]", model="m", usage=None, request={"q": 1}, nodeid="t")
    assert cache.get("k", "v1|single|5|0").parsed is None
    cache.remember_parse("k", "v1|single|5|0", '{"score": 4}')
    cache.flush()
    assert cache.get("k", "v1|single|5|0").parsed == '{"score": 4}'
    assert cache.get("k", "v2|single|5|0").parsed is None  # a new parser version reads raw again
    cache.put("k", raw="[[2]]", model="m", usage=None, request={"q": 1}, nodeid="t")
    assert cache.get("k", "v1|single|5|0").parsed is None  # a refreshed reply drops its old memo
    cache.close()


def test_touches_are_buffered_until_close(tmp_path):
    cache = VerdictCache(tmp_path, run_id="run-1")
    cache.put("k", raw="[[4]]", model="m", usage=None, request={"q": 1}, nodeid="t")
    cache.close()
    cache = VerdictCache(tmp_path, run_id="run-2")
    cache.touch("k", "t")
    other = VerdictCache(tmp_path, run_id="run-2")
    assert other.prune_unused("run-2") == 0  # nothing recorded for run-2 yet: prune keeps everything
    cache.close()  # flushes the use
    assert other.prune_unused("run-2") == 0 and other.get("k") is not None
    other.close()


def test_requests_ask_for_a_verdict_sized_reply_unless_the_test_says() -> None:
    from pytest_pai_judge.protocol import VERDICT_MAX_TOKENS
    from pytest_pai_judge.request import JudgeRequest

    assert VERDICT_MAX_TOKENS == 1024
    assert JudgeRequest.single("q?", "a.").body()["max_tokens"] == 1024
    assert JudgeRequest.pairwise("q?", "a.", "b.").body()["max_tokens"] == 1024
    assert JudgeRequest.custom("rate it [[N]]").body()["max_tokens"] == 1024
    assert JudgeRequest.single("q?", "a.", max_tokens=300).body()["max_tokens"] == 300


CASES = '''
from pytest_pai_judge import assert_judge_score

def test_fits():
    assert_judge_score("What is the capital of France?", "Paris is the capital of France.", 1)

def test_short_room():
    assert_judge_score("What is the capital of Italy?", "Rome is the capital of Italy.", 1, max_tokens=3)
'''


def cache_as_before(root: Path, server, question: str, answer: str) -> int:
    """Judge ``question`` as plugins before the verdict-sized default did (no ``max_tokens``) and
    store the reply as they did; returns the reply's completion tokens."""
    from pytest_pai_judge.client import JudgeClient
    from pytest_pai_judge.request import JudgeRequest, judge_identity

    request = JudgeRequest.single(question, answer)
    del request.params["max_tokens"]
    reply = JudgeClient(server.url).complete(request)
    with VerdictCache(root / ".pai_judge_cache") as cache:
        cache.put(cache_key(request.body(), judge_identity(server.url)), raw=reply.raw, model=reply.model,
                  usage=reply.usage, request=request.body(), nodeid=None)
    return reply.usage["completion_tokens"]


@pytest.mark.parametrize("mode", ["use", "replay"])
def test_replies_cached_before_the_default_max_tokens_are_adopted_when_they_fit(
        pytester: pytest.Pytester, make_judge_server, mode: str) -> None:
    """Upgrading keeps the cache: a reply stored for the same body without ``max_tokens`` (the server's
    2,048) that ended within the new limit is the reply the capped request gets, so it is reused; one
    that would not fit is not (the judge is asked)."""
    server = make_judge_server()
    pytester.makepyfile(test_adopted_cases=CASES)
    assert cache_as_before(pytester.path, server, "What is the capital of France?",
                           "Paris is the capital of France.") <= 1024
    sent = server.stats["chat_completions"]
    args = ("--judge-base-url", server.url, "-p", "no:cacheprovider")
    result = pytester.runpytest(*args, "-k", "fits", f"--judge-cache={mode}")
    result.assert_outcomes(passed=1)
    assert server.stats["chat_completions"] == sent, "a reply that fit the new limit was paid for again"
    db = pytester.path / ".pai_judge_cache" / DB_FILENAME
    with sqlite3.connect(db) as conn:
        unsized = conn.execute("SELECT COUNT(*) FROM replies WHERE instr(request, 'max_tokens') = 0").fetchone()
    assert unsized == ((0,) if mode == "use" else (1,))  # moved to its new key; replay writes nothing
    if mode == "use":
        again = pytester.runpytest(*args, "-k", "fits", "--judge-cache=replay")
        again.assert_outcomes(passed=1)
        assert server.stats["chat_completions"] == sent


def test_a_cached_reply_longer_than_the_new_limit_is_not_adopted(pytester: pytest.Pytester, make_judge_server) -> None:
    server = make_judge_server()
    pytester.makepyfile(test_adopted_cases=CASES)
    assert cache_as_before(pytester.path, server, "What is the capital of Italy?", "Rome is the capital of Italy.") > 3
    sent = server.stats["chat_completions"]
    result = pytester.runpytest("--judge-base-url", server.url, "-p", "no:cacheprovider", "-k", "short_room")
    assert server.stats["chat_completions"] == sent + 1, "a reply that would have been cut was reused"
    result.stdout.fnmatch_lines(["*cut at max_tokens*"])
