"""Run the judge server inside the current process, on a background thread (tests, fixtures, the CLI).

``start()`` binds the socket itself (so port 0 gives a known free port at once), runs uvicorn on
its own event loop in a daemon thread and returns as soon as uvicorn reports it is serving.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import uvicorn

from .app import create_app
from .config import Fault, ServerConfig

START_TIMEOUT_S = 30.0


def _coerce(overrides: dict[str, Any]) -> dict[str, Any]:
    """Accept CLI-like values in overrides: faults as ``"PATTERN=KIND"`` strings, data_dir as str."""
    out = dict(overrides)
    if "faults" in out:
        out["faults"] = [f if isinstance(f, Fault) else Fault.parse(f) for f in out["faults"]]
    if isinstance(out.get("data_dir"), str):
        out["data_dir"] = Path(out["data_dir"])
    return out


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every kept-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class LocalJudgeServer:
    """A PAI-compatible judge server on 127.0.0.1 (by default) for the lifetime of this object.

    ``LocalJudgeServer(latency_ms=50, faults=["boom=500"])`` overrides fields of
    :class:`ServerConfig`. Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, config: ServerConfig | None = None, **overrides: Any) -> None:
        self.config = dataclasses.replace(config or ServerConfig(), **_coerce(overrides))
        self._tmpdir: str | None = None
        if self.config.data_dir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="pai-judge-server-")
            self.config.data_dir = Path(self._tmpdir)
        try:
            self.app = create_app(self.config)
        except BaseException:
            self._remove_tmpdir()
            raise
        self.url: str | None = None
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def stats(self) -> Counter[str]:
        """The server's live request counters (the same object ``GET /_pai_judge/stats`` reports)."""
        return self.app.state.stats

    def start(self) -> str:
        """Start serving and return the base URL ending in ``/v1``; idempotent."""
        if self.url is not None:
            return self.url
        sock = _bind(self.config.host, self.config.port)
        self.port = sock.getsockname()[1]
        uv_config = uvicorn.Config(self.app, log_config=None, log_level=self.config.log_level, access_log=False,
                                   lifespan="on", timeout_graceful_shutdown=5)
        server = uvicorn.Server(uv_config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                                  name=f"pai-judge-server:{self.port}")
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(5)
                sock.close()
                self._server = self._thread = None
                raise RuntimeError(f"PAI judge server failed to start on {self.config.host}:{self.port} "
                                   "(see the log above)")
            thread.join(0.002)
        host = f"[{self.config.host.strip('[]')}]" if ":" in self.config.host else self.config.host
        self.url = f"http://{host}:{self.port}/v1"
        return self.url

    def stop(self) -> None:
        """Stop serving: in-flight ``timeout`` faults are released, then uvicorn shuts down gracefully."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            loop = getattr(self.app.state, "loop", None)
            if loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self.app.state.shutdown.set)
                except RuntimeError:  # the loop closed in between
                    pass
            server.should_exit = True
            thread.join(15)
        self._server = self._thread = None
        self.url = None
        self._remove_tmpdir()

    def _remove_tmpdir(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> LocalJudgeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalJudgeServer(url={self.url!r}, engine={self.config.engine!r})"
