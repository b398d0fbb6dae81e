"""The Starlette application of the local PAI-compatible judge server: routes, auth, errors, lifespan.

The batch half (``/v1/files``, ``/v1/batches``) lives in :mod:`.batch_api` and is mounted when
that module is present; it judges its lines through ``app.state.complete``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..protocol import ProtocolError, model_not_found
from .auth import TokenAuthMiddleware, is_loopback
from .body_timeout import BodyTimeoutMiddleware
from .chat import ChatService
from .config import ServerConfig
from .engines import load_engine
from .rate_limit import RateLimit, RateLimitMiddleware
from .responses import SafeJSONResponse, error_response, model_card, new_request_id

try:
    from .batch_api import BatchService
except ModuleNotFoundError as exc:  # the batch half is optional; a bug inside it must still surface
    if exc.name != f"{__package__}.batch_api":
        raise
    BatchService = None  # type: ignore[assignment,misc]

logger = logging.getLogger("pytest_pai_judge.server")

_HTTP_CODES = {404: ("NotFound", "not_found_error"), 405: ("MethodNotAllowed", "invalid_request_error")}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and wrong methods as JSON envelopes, like every other error."""
    assert isinstance(exc, HTTPException)
    code, kind = _HTTP_CODES.get(exc.status_code, ("HTTPError", "invalid_request_error"))
    body = {"error": {"message": f"{exc.detail}: {request.method} {request.url.path}", "type": kind,
                      "param": None, "code": code}}
    return SafeJSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _protocol_error(request: Request, exc: Exception) -> Response:
    """A ProtocolError no route caught (the body timeout, raised while a body is read): its envelope."""
    assert isinstance(exc, ProtocolError)
    return error_response(exc)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """Any unexpected exception: a 500 ModelServiceFailed envelope with a request id, never a traceback."""
    request_id = new_request_id()
    logger.error("unhandled error (request %s) on %s %s", request_id, request.method, request.url.path,
                 exc_info=exc)
    err = ProtocolError(500, "ModelServiceFailed",
                        f"Internal_server_error, load error, request_id: {request_id}, errmsg: {type(exc).__name__}")
    return error_response(err, {"x-request-id": request_id})


def _model_routes(config: ServerConfig) -> list[BaseRoute]:
    async def list_models(request: Request) -> Response:
        return SafeJSONResponse({"object": "list", "data": [model_card(name) for name in config.models]})

    async def get_model(request: Request) -> Response:
        name = request.path_params["model_id"]
        if name not in config.models:
            return error_response(model_not_found(list(config.models)))
        return SafeJSONResponse(model_card(name))

    return [Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", get_model, methods=["GET"])]


def create_app(config: ServerConfig | None = None) -> Starlette:
    """Build the server app. State for tests and the batch half lives on ``app.state``:

    ``config``, ``stats`` (a live :class:`collections.Counter`), ``engine``, ``complete`` (an async
    ``complete(body: dict) -> (status, json)`` judging one request like the online endpoint),
    ``batch`` (the BatchService or None) and ``shutdown`` (an :class:`asyncio.Event` set at shutdown).
    """
    config = config or ServerConfig()
    if not config.token and not is_loopback(config.host):
        logger.warning("PAI judge server bound to %s without a token: anyone who can reach it can use it "
                       "(set --token or JUDGE_MODEL_TOKEN)", config.host)
    stats: Counter[str] = Counter()
    shutdown = asyncio.Event()
    engine = load_engine(config.engine, config)
    engine.stats = stats  # upstream calls and queue depth are counted with the requests
    chat = ChatService(config, engine, stats, shutdown)
    batch = BatchService(config, chat.complete, stats) if BatchService is not None else None

    async def stats_endpoint(request: Request) -> Response:
        return SafeJSONResponse(dict(stats))

    routes: list[BaseRoute] = [Route("/v1/chat/completions", chat.endpoint, methods=["POST"]),
                               *_model_routes(config),
                               Route("/_pai_judge/stats", stats_endpoint, methods=["GET"])]
    if batch is not None:
        routes += batch.routes()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.loop = asyncio.get_running_loop()
        shutdown.clear()
        await engine.startup()
        if batch is not None:
            await batch.startup()
        try:
            yield
        finally:
            shutdown.set()
            if batch is not None:
                await batch.shutdown()
            await engine.aclose()
            chat.close()

    handlers: dict[Any, Any] = {HTTPException: _http_error, ProtocolError: _protocol_error, Exception: _internal_error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers,
                    middleware=[Middleware(BodyTimeoutMiddleware, timeout_s=config.body_timeout_s),
                                Middleware(TokenAuthMiddleware, token=config.token),
                                Middleware(RateLimitMiddleware, stats=stats,  # after auth, as a gateway counts
                                           limit=RateLimit.parse(config.rate_limit) if config.rate_limit else None)])
    app.state.config = config
    app.state.stats = stats
    app.state.engine = engine
    app.state.complete = chat.complete
    app.state.batch = batch
    app.state.shutdown = shutdown
    return app
