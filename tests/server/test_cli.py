"""The ``pai-judge-server`` command: a real subprocess on a free port, and its argument checking."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import pytest

from pytest_pai_judge.server.cli import build_parser, config_from_args, main

URL_LINE = re.compile(r"^PAI judge server listening on (http://127\.0\.0\.1:(\d+)/v1)$")


def test_subprocess_prints_url_serves_and_stops_on_sigterm(tmp_path):
    env = {**os.environ, "JUDGE_MODEL_TOKEN": "cli-secret"}
    proc = subprocess.Popen([sys.executable, "-m", "pytest_pai_judge.server", "--port", "0", "--data-dir",
                             str(tmp_path), "--fault", "BOOM=500", "--model", "pai-judge=32768"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        match = URL_LINE.match(line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = match.group(1)
        body = {"model": "pai-judge", "messages": [{"role": "user", "content": [
            {"mode": "single", "type": "json", "json": {"question": "q?", "answer": "a"}}]}]}
        auth = {"Authorization": "Bearer Authorization: Bearer cli-secret"}
        response = httpx.post(f"{url}/chat/completions", json=body, headers=auth)
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"].startswith("I think the overall score")
        assert httpx.post(f"{url}/chat/completions", json=body).status_code == 401
        body["messages"][0]["content"][0]["json"]["question"] = "BOOM"
        assert httpx.post(f"{url}/chat/completions", json=body, headers=auth).status_code == 500
        assert [m["id"] for m in httpx.get(f"{url}/models", headers=auth).json()["data"]] == ["pai-judge"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert "cli-secret" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigint_stops_cleanly(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "pytest_pai_judge.server", "--data-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert URL_LINE.match(proc.stdout.readline().strip())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("argv,message", [
    (["--fault", "nokind"], "PATTERN=KIND"),
    (["--fault", "x=explode"], "kind must be one of"),
    (["--model", "pai-judge"], "NAME=CONTEXT"),
    (["--model", "pai-judge=big"], "whole number"),
    (["--port", "70000"], "0..65535"),
    (["--latency-ms", "-5"], ">= 0"),
    (["--batch-concurrency", "0"], ">= 1"),
    (["--status-dialect", "klingon"], "invalid choice"),
    (["--engine", "openai"], "--upstream-base-url"),
    (["--engine", "no.such.module:Engine"], "cannot load engine"),
    (["--data-dir", "/proc/no-such-dir/data"], "--data-dir /proc/no-such-dir/data: cannot create it"),
])
def test_bad_arguments_are_clear_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_config_from_args(monkeypatch):
    monkeypatch.setenv("JUDGE_MODEL_TOKEN", "from-env")
    parser = build_parser()
    config = config_from_args(parser.parse_args([
        "--model", "a=100", "--model", "b=200", "--context-limit", "5000", "--fault", "x=y=429",
        "--latency-ms", "7", "--status-dialect", "openai", "--batch-concurrency", "3"]))
    assert config.models == {"a": 5000, "b": 5000} and config.token == "from-env"
    assert [(f.pattern, f.kind) for f in config.faults] == [("x=y", "429")]
    assert (config.latency_ms, config.status_dialect, config.batch_concurrency) == (7, "openai", 3)
    assert config.host == "127.0.0.1" and config.port == 0
    assert config_from_args(parser.parse_args(["--token", "argv"])).token == "argv"


def test_every_option_has_help():
    for action in build_parser()._actions:
        assert action.help, action.option_strings
