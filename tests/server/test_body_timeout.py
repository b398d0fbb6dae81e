"""A request body that stops arriving is given up on: 408 RequestTimeout and the connection closed.

Before: a request whose Content-Length exceeds what it sends held its connection (and its handler)
open for ever. The body timeout (``--body-timeout``, ``ServerConfig.body_timeout_s``) is the longest
silence allowed between two pieces of a body, as nginx's ``client_body_timeout``.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from pytest_pai_judge.server import LocalJudgeServer
from pytest_pai_judge.server.cli import build_parser, config_from_args

TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LocalJudgeServer(data_dir=tmp_path_factory.mktemp("body-timeout"), body_timeout_s=TIMEOUT_S) as srv:
        yield srv


def raw_exchange(server: LocalJudgeServer, head: bytes, body: bytes, wait_s: float = 10.0) -> tuple[bytes, float, bool]:
    """Send ``head`` + ``body`` on a raw socket and read until the server closes: (reply, seconds, closed)."""
    assert server.port is not None
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait_s) as sock:
        started = time.monotonic()
        sock.sendall(head + body)
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
            closed = True
        except TimeoutError:
            closed = False
        return reply, time.monotonic() - started, closed


def request_head(path: str, length: int, content_type: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


MULTIPART_START = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n\r\n{"custom'


@pytest.mark.parametrize("path,content_type,start", [
    ("/v1/chat/completions", "application/json", b'{"model": "pai-'),
    ("/v1/batches", "application/json", b'{"input_file_i'),
    ("/v1/files", "multipart/form-data; boundary=xyz", MULTIPART_START),
])
def test_short_body_is_408_and_the_connection_closes(server, path, content_type, start):
    reply, seconds, closed = raw_exchange(server, request_head(path, 1000, content_type), start)
    assert closed, "the server held the connection"
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    assert b"connection: close" in reply.lower()
    error = json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["code"] == "RequestTimeout" and f"{TIMEOUT_S:g} s" in error["message"]
    assert f"{len(start)} of 1000 bytes" in error["message"]
    assert TIMEOUT_S <= seconds < TIMEOUT_S + 3


def test_a_slow_but_steady_body_is_read(server):
    """Only silence counts: a body arriving in pieces, each within the timeout, is judged as usual."""
    body = json.dumps({"model": "pai-judge", "messages": [{"role": "user", "content": [
        {"mode": "single", "type": "json", "json": {"question": "What is 2+2?", "answer": "4"}}]}]}).encode()
    assert server.port is not None
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request_head("/v1/chat/completions", len(body)))
        pieces = [body[i:i + len(body) // 4 + 1] for i in range(0, len(body), len(body) // 4 + 1)]
        for piece in pieces:
            time.sleep(TIMEOUT_S * 0.6)
            sock.sendall(piece)
        reply = sock.recv(65536)
    assert len(pieces) >= 4 and reply.startswith(b"HTTP/1.1 200 "), reply[:300]


def test_kept_alive_connections_are_not_affected(server):
    """The timeout is for a body being received, not for an idle kept-alive connection or a stream."""
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/models").status_code == 200
        time.sleep(TIMEOUT_S * 2)
        assert http.get("/models").status_code == 200
        body = {"model": "pai-judge", "stream": True, "messages": [{"role": "user", "content": [
            {"mode": "single", "type": "json", "json": {"question": "What is 2+2?", "answer": "4"}}]}]}
        with http.stream("POST", "/chat/completions", json=body) as stream:
            assert stream.status_code == 200
            time.sleep(TIMEOUT_S * 2)
            assert b"[DONE]" in stream.read()
        assert http.get("/models").status_code == 200


def test_cli_option():
    parser = build_parser()
    assert config_from_args(parser.parse_args([])).body_timeout_s == 5.0
    assert config_from_args(parser.parse_args(["--body-timeout", "2.5"])).body_timeout_s == 2.5
    with pytest.raises(SystemExit):
        parser.parse_args(["--body-timeout", "0"])
