"""A fake third-party model server: OpenAI-compatible, one generation at a time, like llama.cpp's default.

It plays the *upstream* of our server's ``openai`` engine over real HTTP (starlette + uvicorn on a
127.0.0.1 free port, in a thread) and records what a real model server would experience: how many
requests it had open at once, how many generations it ran and finished, and when a client closed
its connection while it was still working. A question containing ``FAIL500`` is answered 500 at once
(``retry-after-ms: 10``); any other request generates for ``generation_s`` seconds -- with one
generation slot, so a second request waits for the first, as in llama.cpp -- unless its client leaves.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REPLY = ("I think the overall score of the answer is [[5]] due to the following reasons:\n"
         "1. Accuracy: the answer is correct [[5]]")


class FakeModel:
    """``with FakeModel(generation_s=0.3) as model: model.url`` -> ``http://127.0.0.1:PORT/v1``."""

    def __init__(self, generation_s: float = 0.2) -> None:
        self.generation_s = generation_s
        self.arrivals = 0
        """Chat requests received (each a model run asked for)."""
        self.open = 0
        """Requests open right now (received, not yet answered or abandoned)."""
        self.max_open = 0
        self.generations_started = 0
        self.generations_finished = 0
        self.questions: list[str] = []
        """The last user message of each request, in arrival order."""
        self.disconnects: list[float] = []
        """``time.monotonic()`` of each client that left while its request was open."""
        self._slot: asyncio.Lock | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # ------------------------------------------------------------------ the model

    async def _chat(self, request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        question = str(body["messages"][-1]["content"])
        self.arrivals += 1
        self.questions.append(question)
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            if "FAIL500" in question:
                return JSONResponse({"error": {"message": "model crashed", "type": "server_error"}},
                                    status_code=500, headers={"retry-after-ms": "10"})
            left = asyncio.ensure_future(self._client_left(request))
            try:
                if self._slot is None:
                    self._slot = asyncio.Lock()
                async with self._slot:  # one generation at a time; the rest wait here, connected
                    if left.done():
                        return Response(status_code=499)
                    self.generations_started += 1
                    done, _ = await asyncio.wait({left}, timeout=self.generation_s)
                    if done:
                        return Response(status_code=499)
                    self.generations_finished += 1
            finally:
                left.cancel()
            n = int(body.get("n") or 1)
            return JSONResponse({
                "id": f"chatcmpl-fake-{self.arrivals}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [{"index": i, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}
                            for i in range(n)],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}})
        finally:
            self.open -= 1

    async def _client_left(self, request: Request) -> None:
        """Return when the client closes its connection (the body has been read already)."""
        while (await request.receive())["type"] != "http.disconnect":
            pass
        self.disconnects.append(time.monotonic())

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                                     timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the fake model did not start"
            time.sleep(0.005)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        return self.url

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> FakeModel:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
