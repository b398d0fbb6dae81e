"""A fake third-party model server: OpenAI-compatible, one generation at a time, like llama.cpp's default.

It plays the *upstream* of our server's ``openai`` engine over real HTTP (starlette + uvicorn on a
127.0.0.1 free port, in a thread) and records what a real model server would experience: how many
requests it had open at once, how many generations it ran and finished, and when a client closed
its connection while it was still working. A question containing ``FAIL500`` is answered 500 at once
(``retry-after-ms: 10``); any other request generates for ``generation_s`` seconds -- with one
generation slot, so a second request waits for the first, as in llama.cpp -- unless its client leaves.

``reply`` sets the answer text. ``stream=true`` is answered as SSE chunks, one per word, ``chunk_delay_s``
apart (the times they were sent are kept in ``chunk_times``). ``flavour`` adds the routes one model
server uses to tell its context length (``context``) and count tokens (one per 2 characters of the
messages, far from the judge server's estimate): ``vllm`` (``/v1/models`` max_model_len, ``/tokenize``),
``llama.cpp`` (``/props``, ``/apply-template`` + ``/tokenize``), ``ollama`` (``/api/show``),
``llama-cpp-python`` (``/extras/tokenize/count``, no context route); None: none of them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

REPLY = ("I think the overall score of the answer is [[5]] due to the following reasons:\n"
         "1. Accuracy: the answer is correct [[5]]")


class FakeModel:
    """``with FakeModel(generation_s=0.3) as model: model.url`` -> ``http://127.0.0.1:PORT/v1``."""

    def __init__(self, generation_s: float = 0.2, *, reply: str = REPLY, chunk_delay_s: float = 0.0,
                 flavour: str | None = None, context: int = 4096) -> None:
        self.generation_s = generation_s
        self.reply = reply
        self.chunk_delay_s = chunk_delay_s
        self.flavour = flavour
        self.context = context
        self.chunk_times: list[float] = []
        """``time.monotonic()`` of each streamed chunk as it was sent."""
        self.bodies: list[dict[str, Any]] = []
        """Every chat request body, in arrival order."""
        self.tokenize_calls = 0
        self.counted: list[int] = []
        """Every token count the fake tokenizer answered."""
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
        self.bodies.append(body)
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
            if body.get("stream"):
                return StreamingResponse(self._chunks(body, n, request), media_type="text/event-stream")
            return JSONResponse({
                "id": f"chatcmpl-fake-{self.arrivals}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [{"index": i, "message": {"role": "assistant", "content": self.reply},
                             "finish_reason": "stop"}
                            for i in range(n)],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}})
        finally:
            self.open -= 1

    async def _chunks(self, body: dict[str, Any], n: int, request: Request) -> Any:
        """The reply as SSE chunks; stops (and records a disconnect) once the client has closed the stream."""
        head = {"id": "chatcmpl-fake-stream", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body.get("model", "fake")}

        def event(choices: list[dict[str, Any]], usage: Any = None) -> bytes:
            return b"data: " + json.dumps({**head, "choices": choices, "usage": usage}).encode() + b"\n\n"

        words = self.reply.split(" ")
        for i in range(n):
            yield event([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for k, word in enumerate(words):
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            if await request.is_disconnected():
                self.disconnects.append(time.monotonic())
                return
            self.chunk_times.append(time.monotonic())
            piece = word if k == len(words) - 1 else word + " "
            for i in range(n):
                yield event([{"index": i, "delta": {"content": piece}, "finish_reason": None}])
        for i in range(n):
            yield event([{"index": i, "delta": {}, "finish_reason": "stop"}])
        if (body.get("stream_options") or {}).get("include_usage"):
            yield event([], {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33})
        yield b"data: [DONE]\n\n"

    # ------------------------------------------------------------------ what a model server tells

    def tokens_of(self, text: str) -> int:
        """The fake tokenizer: one token per 2 characters."""
        count = max(1, len(text) // 2)
        self.counted.append(count)
        return count

    async def _models(self, request: Request) -> Response:
        card: dict[str, Any] = {"id": "fake", "object": "model", "owned_by": "me"}
        if self.flavour == "vllm":
            card["max_model_len"] = self.context
        return JSONResponse({"object": "list", "data": [card]})

    async def _props(self, request: Request) -> Response:
        return JSONResponse({"default_generation_settings": {"n_ctx": self.context}, "total_slots": 1})

    async def _show(self, request: Request) -> Response:
        body = await request.json()
        if body.get("model") != "fake":
            return JSONResponse({"error": "model not found"}, status_code=404)
        return JSONResponse({"parameters": f"num_ctx {self.context}\nstop <|im_end|>",
                             "model_info": {"qwen2.context_length": 32768}})

    async def _tokenize(self, request: Request) -> Response:
        body = await request.json()
        self.tokenize_calls += 1
        if self.flavour == "vllm":
            text = "".join(m["content"] for m in body["messages"])
            return JSONResponse({"count": self.tokens_of(text), "max_model_len": self.context, "tokens": []})
        return JSONResponse({"tokens": list(range(self.tokens_of(body["content"])))})

    async def _apply_template(self, request: Request) -> Response:
        body = await request.json()
        return JSONResponse({"prompt": "".join(m["content"] for m in body["messages"])})

    async def _count(self, request: Request) -> Response:
        body = await request.json()
        self.tokenize_calls += 1
        return JSONResponse({"count": self.tokens_of(body["input"].replace("\n", ""))})

    def routes(self) -> list[Route]:
        routes = [Route("/v1/chat/completions", self._chat, methods=["POST"]),
                  Route("/v1/models", self._models, methods=["GET"])]
        if self.flavour == "vllm":
            routes.append(Route("/tokenize", self._tokenize, methods=["POST"]))
        elif self.flavour == "llama.cpp":
            routes += [Route("/props", self._props, methods=["GET"]),
                       Route("/tokenize", self._tokenize, methods=["POST"]),
                       Route("/apply-template", self._apply_template, methods=["POST"])]
        elif self.flavour == "ollama":
            routes.append(Route("/api/show", self._show, methods=["POST"]))
        elif self.flavour == "llama-cpp-python":
            routes.append(Route("/extras/tokenize/count", self._count, methods=["POST"]))
        return routes

    async def _client_left(self, request: Request) -> None:
        """Return when the client closes its connection (the body has been read already)."""
        while (await request.receive())["type"] != "http.disconnect":
            pass
        self.disconnects.append(time.monotonic())

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        app = Starlette(routes=self.routes())
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
