"""Shared fixtures: real local judge servers on 127.0.0.1 free ports."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Inner pytest runs (pytester, subprocesses) must print the same in CI as on a laptop: pytest
# stops truncating summary lines when CI / BUILD_NUMBER is set, which changes what tests count.
for _ci_var in ("CI", "BUILD_NUMBER"):
    os.environ.pop(_ci_var, None)

# pytester's in-process runs restore sys.modules afterwards, so load here, once, what inner runs import:
# numpy (under pandas and scipy) and datasets (pyarrow's extension types) cannot be imported twice in one
# process, and an HTTP stack first imported inside
# an inner run would come back as a second copy whose exception classes (openai.APITimeoutError, ...)
# the next test's copy does not catch.
import asyncio  # noqa: E402 - after the environment is cleaned above
import socket  # noqa: E402

import datasets  # noqa: F401, E402 - pyarrow refuses a second import's extension types
import httpx  # noqa: F401, E402
import openai  # noqa: E402
import pandas  # noqa: F401, E402
import scipy.stats  # noqa: F401, E402 - numpy's extension modules again (--judge-regression's statistics)


def _load_the_http_stack() -> None:
    """The SDK imports its transport (httpcore, h11, anyio's backends) on the first call: make one,
    sync and async, to a port nothing listens on, so no inner run is the first."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    try:
        openai.OpenAI(api_key="x", base_url=dead, max_retries=0).post("/x", body={}, cast_to=object)
    except openai.APIConnectionError:
        pass

    async def call() -> None:
        try:
            await openai.AsyncOpenAI(api_key="x", base_url=dead, max_retries=0).post("/x", body={}, cast_to=object)
        except openai.APIConnectionError:
            pass

    asyncio.run(call())


_load_the_http_stack()

from pytest_pai_judge.server import LocalJudgeServer  # noqa: E402


@pytest.fixture(scope="session")
def judge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalJudgeServer]:
    """One default server (lexical engine, no token) for the whole session; counters are shared, use deltas."""
    with LocalJudgeServer(data_dir=tmp_path_factory.mktemp("judge-server")) as server:
        yield server


@pytest.fixture
def make_judge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LocalJudgeServer]]:
    """Factory: ``make_judge_server(token="t", latency_ms=50, faults=["boom=500"])`` -> a started server.

    Keyword arguments override :class:`ServerConfig` fields; every server is stopped at teardown.
    """
    servers: list[LocalJudgeServer] = []

    def make(**overrides: Any) -> LocalJudgeServer:
        overrides.setdefault("data_dir", tmp_path_factory.mktemp("judge-server"))
        server = LocalJudgeServer(**overrides)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in reversed(servers):
        server.stop()
