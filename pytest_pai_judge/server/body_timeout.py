"""The body-read timeout: a request body that stops arriving is answered 408, and its connection closed.

Why: uvicorn waits for a body as long as the client keeps the connection open, so a request whose
Content-Length exceeds what it sends held its handler (and, at shutdown, the server) for ever.
The timeout is the longest silence between two pieces of one body (nginx's ``client_body_timeout``),
so a slow upload that keeps moving is read whole. Once the body is complete, ``receive`` is passed
through untouched: a streamed response's disconnect watch is not timed.

Any response that starts before its request body was completely received (the 408, a 413, a
route that ignores a body) says ``Connection: close``: the unread rest of that body must not be
read as the next request on a kept-alive connection.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import body_timeout


def _declared_length(scope: Scope) -> tuple[bool, int | None]:
    """Whether the request has a body, and its Content-Length when it says one."""
    length: int | None = None
    chunked = False
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.strip().isdigit():
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return chunked or bool(length), length


class BodyTimeoutMiddleware:
    """Raises the 408 ProtocolError into the handler reading a body that went silent for ``timeout_s``."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        has_body, declared = _declared_length(scope)
        body_done = not has_body
        received = 0

        async def timed_receive() -> Message:
            nonlocal body_done, received
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except asyncio.TimeoutError:
                raise body_timeout(self.timeout_s, received, declared) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not body_done:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, timed_receive, closing_send)
