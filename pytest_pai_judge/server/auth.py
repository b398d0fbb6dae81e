"""Bearer-token guard for the API routes, tolerant of the vendor sample's doubled prefix.

PAI's own Python sample passes ``api_key=f'Authorization: Bearer {token}'`` to the openai SDK,
which then sends ``Authorization: Bearer Authorization: Bearer <token>``; the real service
accepts that, so this guard does too. The token is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import invalid_token
from .responses import error_response

PROTECTED_PREFIXES = ("/v1", "/_pai_judge")


def presented_token(header: str) -> str | None:
    """The token in an ``Authorization`` value: ``Bearer <t>``, also with the vendor's repeated prefix."""
    value = header.strip()
    if value[:7].lower() != "bearer ":
        return None
    for _ in range(4):
        if value[:7].lower() == "bearer ":
            value = value[7:].strip()
        elif value[:14].lower() == "authorization:":
            value = value[14:].strip()
        else:
            break
    return value or None


def token_matches(header: str | None, token: str) -> bool:
    presented = presented_token(header or "")
    return presented is not None and hmac.compare_digest(presented.encode(), token.encode())


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TokenAuthMiddleware:
    """Answers 401 InvalidToken on protected paths unless the request carries the configured token."""

    def __init__(self, app: ASGIApp, token: str | None, prefixes: tuple[str, ...] = PROTECTED_PREFIXES) -> None:
        self.app = app
        self.token = token
        self.prefixes = prefixes

    def _protected(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token and scope["type"] == "http" and self._protected(scope.get("path", "")):
            header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"authorization"), None)
            if not token_matches(header, self.token):
                response = error_response(invalid_token(), {"www-authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
