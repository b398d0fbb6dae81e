"""What keeps a 20,000-test batch run small: no SDK import, replies and held assertions in temp files.

The memory figure itself is a benchmark (``benchmarks/memory.py``); these tests pin the behaviour
the savings must not change: the SDK's failure policy for files / batches calls, and that what is
read back from a spool equals what went in.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_pai_judge import errors
from pytest_pai_judge.batch_http import BatchAPI, retry_delay, should_retry
from pytest_pai_judge.client import JudgeReply
from pytest_pai_judge.deferred.held import Pending
from pytest_pai_judge.deferred.held_spool import PendingSpool, Spooled
from pytest_pai_judge.deferred.replies import Outcomes
from pytest_pai_judge.expectation import Expectation
from pytest_pai_judge.request import JudgeRequest
from pytest_pai_judge.server import LocalJudgeServer


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next (status, headers, body, delay) of the server's script."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append((self.command, self.path))  # type: ignore[attr-defined]
        status, headers, body, delay = self.server.script.pop(0)  # type: ignore[attr-defined]
        if delay:
            threading.Event().wait(delay)
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[Callable[..., tuple[str, list[tuple[str, str]]]]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def make(*script: tuple[int, dict[str, str], Any, float]) -> tuple[str, list[tuple[str, str]]]:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
        server.script = list(script)  # type: ignore[attr-defined]
        server.seen = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1", server.seen  # type: ignore[attr-defined]

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_5xx_is_retried_after_the_servers_retry_after(scripted: Callable[..., Any]) -> None:
    url, seen = scripted((503, {"retry-after-ms": "10"}, {"error": {"message": "busy"}}, 0),
                         (200, {}, {"id": "batch_1", "status": "in_progress"}, 0))
    api = BatchAPI(url, "t", timeout=5, max_retries=2)
    assert api.retrieve_batch("batch_1")["id"] == "batch_1"
    assert seen == [("GET", "/v1/batches/batch_1")] * 2


def test_an_error_answer_is_the_judge_error_of_its_code(scripted: Callable[..., Any]) -> None:
    url, seen = scripted((401, {}, {"error": {"code": "InvalidToken", "message": "bad token"}}, 0))
    with pytest.raises(errors.InvalidToken, match="bad token"):
        BatchAPI(url, "t", timeout=5, max_retries=3).create_batch(input_file_id="f")
    assert len(seen) == 1, "a 401 is not retried"


def test_a_post_whose_answer_timed_out_is_not_resent(scripted: Callable[..., Any]) -> None:
    url, seen = scripted((200, {}, {"id": "batch_1"}, 1.0), (200, {}, {"id": "batch_2"}, 0))
    with pytest.raises(errors.JudgeTimeout, match="not resent"):
        BatchAPI(url, "t", timeout=0.3, max_retries=3).create_batch(input_file_id="f")
    assert len(seen) == 1


def test_a_dead_judge_is_a_connection_error_after_the_retries() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    with pytest.raises(errors.JudgeConnectionError, match="cannot reach the judge"):
        BatchAPI(url, None, timeout=2, max_retries=0).retrieve_batch("batch_1")


def test_the_retry_rule_is_the_sdks() -> None:
    assert should_retry(500, {}) and should_retry(429, {}) and should_retry(408, {}) and should_retry(409, {})
    assert not should_retry(400, {}) and not should_retry(500, {"x-should-retry": "false"})
    assert not should_retry(503, {"retry-after": "600"}), "a wait past two minutes is not retried"
    assert retry_delay(0, {"retry-after": "3"}) == 3.0
    assert 0.375 <= retry_delay(0, None) <= 0.5 and 6.0 <= retry_delay(9, None) <= 8.0


def test_the_whole_batch_flow_over_real_http(tmp_path: Any) -> None:
    with LocalJudgeServer(data_dir=tmp_path / "server") as server:
        api = BatchAPI(server.url or "", None, timeout=10, max_retries=2)
        line = json.dumps({"custom_id": "t#k", "body": JudgeRequest.single("q?", "a").body()}) + "\n"
        path = tmp_path / "in.jsonl"
        path.write_text(line, encoding="utf-8")
        with open(path, "rb") as data:
            uploaded = api.create_file("in.jsonl", data, "batch")
        assert api.file_content(uploaded["id"]) == line.encode()
        batch = api.create_batch(input_file_id=uploaded["id"], endpoint="/v1/chat/completions",
                                 completion_window="24h")
        assert [b["id"] for b in api.list_batches()] == [batch["id"]]


def test_batch_mode_never_imports_the_sdk(pytester: pytest.Pytester, judge_server: LocalJudgeServer) -> None:
    pytester.makepyfile(test_one="""
        import sys
        from pytest_pai_judge import assert_judge_score

        def test_one():
            assert_judge_score("What is the capital of France?", "Paris", 1)

        def test_last():
            pass
        """)
    pytester.makeconftest("""
        import sys

        def pytest_unconfigure(config):
            print("SDK imported:", "openai" in sys.modules)
        """)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--judge-mode=batch",
                             "--judge-cache=off", f"--judge-base-url={judge_server.url}"],
                            cwd=pytester.path, capture_output=True, text=True, timeout=120)
    assert "2 passed" in result.stdout, result.stdout[-2000:]
    assert "SDK imported: False" in result.stdout


def test_outcomes_read_back_equal_replies_and_the_same_errors() -> None:
    outcomes = Outcomes()
    reply = JudgeReply("score [[4]] \ud800 é", "m", {"total_tokens": 3}, 0.25, ("more",), ("stop", "length"))
    error = errors.BatchError("gone")
    outcomes["a"] = reply
    outcomes["b"] = error
    outcomes.setdefault("b", errors.BatchError("other"))
    assert outcomes["a"] == reply and outcomes["b"] is error and len(outcomes) == 2 and outcomes.holds_reply("a")
    copy = Outcomes()
    copy.update(outcomes)
    assert dict(copy) == {"a": reply, "b": error}
    outcomes["a"] = error
    assert outcomes["a"] is error and not outcomes.holds_reply("a")
    del outcomes["a"]
    assert "a" not in outcomes and outcomes.pop("missing", None) is None
    outcomes.close()
    copy.close()


def pending(**params: Any) -> Pending:
    request = JudgeRequest.single("What is 2+2?", "4", ref_answer="4", **params)
    expectation = Expectation("score", [request], 3.0, "test_x.py::test_x[1]", "batch", {"rerun": "x"})
    return Pending(expectation, ["k" * 64], [["/t/test_x.py", 7, 5, "test_x", {"i": "1"}]])


def test_held_assertions_read_back_equal() -> None:
    spool = PendingSpool()
    entries = [pending(), pending(temperature=0.5)]
    kept = spool.keep(entries)
    assert isinstance(kept, Spooled) and list(kept) == entries and kept[1] == entries[1] and len(kept) == 2
    assert list(kept)[0] is not entries[0], "read back each time, not held"
    odd = [pending(logit_bias={1: 5})]  # an int key does not come back from JSON: kept in memory
    assert spool.keep(odd) is odd
    spool.close()
