"""Nothing paid for is lost: real SIGKILLs of real pytest processes, then a rerun."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pytest_pai_judge.server import LocalJudgeServer

TESTS = 60
SUITE = f'''
import pytest
from pytest_pai_judge import assert_judge_score

@pytest.mark.parametrize("i", range({TESTS}))
def test_case(i):
    assert_judge_score(f"What is the capital of France? (case {{i}})", "Paris is the capital of France.", 1)
'''


def stats(server: LocalJudgeServer) -> dict[str, int]:
    with urllib.request.urlopen(server.url.removesuffix("/v1") + "/_pai_judge/stats") as response:  # type: ignore[union-attr]
        return json.load(response)


def cached_replies(cache_dir: Path) -> int:
    with sqlite3.connect(cache_dir / "verdicts.sqlite3") as db:
        return int(db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])


def pytest_argv(server: LocalJudgeServer, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            "--judge-base-url", server.url or "", *args]


@pytest.mark.parametrize("workers", [["-n", "2"], []], ids=["xdist", "single"])
def test_sigkill_of_a_deferred_run_loses_only_the_calls_in_flight(
        pytester: pytest.Pytester, make_judge_server, workers: list[str]) -> None:
    server = make_judge_server(latency_ms=400)
    pytester.makepyfile(test_many=SUITE)
    concurrency = 8
    proc = subprocess.Popen(pytest_argv(server, "--judge-mode=deferred", f"--judge-concurrency={concurrency}",
                                        f"--judge-max-concurrency={concurrency}", *workers), cwd=pytester.path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while stats(server).get("chat_completions", 0) < 24 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: the controller and its workers
    proc.wait(timeout=30)
    started = stats(server)["chat_completions"]
    assert 24 <= started < TESTS, "killed mid-run"
    kept = cached_replies(pytester.path / ".pai_judge_cache")
    assert kept >= started - concurrency, f"{started} calls started, only {kept} answers kept"
    rerun = subprocess.run(pytest_argv(server, "--judge-mode=deferred", *workers), cwd=pytester.path,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    assert stats(server)["chat_completions"] - started == TESTS - kept, "the rerun paid only for what was not kept"


def test_a_killed_runs_spool_is_removed_once_stale(pytester: pytest.Pytester, make_judge_server) -> None:
    server = make_judge_server()
    pytester.makepyfile(test_many=SUITE.replace(f"range({TESTS})", "range(4)"))
    spool = pytester.path / ".pai_judge_cache" / "spool"
    spool.mkdir(parents=True)
    stale, fresh = spool / "deadrun-gw0.jsonl", spool / "liverun-gw0.jsonl"
    for path in (stale, fresh):
        path.write_text("{}\n")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    result = subprocess.run(pytest_argv(server, "--judge-mode=deferred", "-n", "2"), cwd=pytester.path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    assert not stale.exists() and fresh.exists(), "a live run's spool is left alone"


def test_a_judge_that_goes_down_ends_a_deferred_run_within_seconds(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """The judge server process is killed after 40 answers of a 400-test deferred run: the circuit
    breaker (shared with deferred mode's concurrent calls) fails the rest fast instead of every test
    waiting out its own retries; none of them passes."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judge = subprocess.Popen([sys.executable, "-m", "pytest_pai_judge.server", "--port", str(port),
                              "--latency-ms", "50", "--data-dir", str(tmp_path / "judge")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    run: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url + "/models", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        pytester.makepyfile(test_many=SUITE.replace(f"range({TESTS})", "range(400)"))
        run = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--judge-base-url",
                                url, "--judge-mode=deferred", "--judge-cache=off", "--judge-timeout=5"],
                               cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url.removesuffix("/v1") + "/_pai_judge/stats") as response:
                if json.load(response).get("chat_completions", 0) >= 40:
                    break
            time.sleep(0.05)
        judge.kill()
        killed = time.monotonic()
        out, _ = run.communicate(timeout=120)
        took = time.monotonic() - killed
    finally:
        judge.kill()
        if run is not None and run.poll() is None:
            run.kill()
    import re

    counts = dict((k, int(n)) for n, k in re.findall(r"(\d+) (passed|failed)", out.splitlines()[-1]))
    assert counts.get("failed", 0) >= 300 and sum(counts.values()) == 400, out[-800:]
    assert "not sent: the judge failed the last 2 calls" in out
    assert took < 15, f"the run went on {took:.1f}s after the judge died"  # 47.5 s before the breaker; CI is slow


def start_judge(port: int, data_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    judge = subprocess.Popen([sys.executable, "-m", "pytest_pai_judge.server", "--port", str(port),
                              "--data-dir", str(data_dir), *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).close()
            return judge
        except OSError:
            time.sleep(0.1)
    judge.kill()
    raise AssertionError("the judge server did not start")


def test_a_judge_that_goes_down_ends_a_batch_wait_and_the_next_run_collects_the_job(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Batch mode: the judge server is killed while the job runs. The wait stops within seconds (the
    circuit breaker counts unreachable polls), no test passes, and once the judge is back the next run
    collects the same job instead of paying for a new one."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    pytester.makepyfile(test_many=SUITE.replace(f"range({TESTS})", "range(200)"))
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--judge-base-url", url,
            "--judge-mode=batch", "--judge-batch-poll=0.2"]
    judge = start_judge(port, tmp_path / "judge", "--latency-ms", "3000")  # still running when killed
    run: subprocess.Popen[str] | None = None
    try:
        run = subprocess.Popen(argv, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url + "/batches") as response:
                if json.load(response)["data"]:
                    break
            time.sleep(0.05)
        time.sleep(0.5)
        judge.kill()
        judge.wait()
        killed = time.monotonic()
        out, _ = run.communicate(timeout=120)
        took = time.monotonic() - killed
        assert run.returncode == 1, out[-800:]
        assert "200 failed" in out.splitlines()[-1], out[-800:]
        assert "cannot reach the judge to check batch batch_" in out, out[-2000:]
        assert "the next batch-mode run against this server collects the results" in out
        assert took < 15, f"the run went on {took:.1f}s after the judge died"  # 17.9 s without the breaker; CI is slow

        judge = start_judge(port, tmp_path / "judge")
        again = subprocess.run(argv, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=120)
        assert "200 passed" in again.stdout.splitlines()[-1], again.stdout[-1500:]
        with urllib.request.urlopen(url + "/batches") as response:
            assert len(json.load(response)["data"]) == 1, "the rerun paid for a second job"
    finally:
        judge.kill()
        if run is not None and run.poll() is None:
            run.kill()
