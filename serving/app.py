"""The FastAPI application: lifespan wiring, auth, metrics middleware and error translation."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from prefect_mlops.errors import ConfigError
from prefect_mlops.prediction_log import open_store
from serving.auth import require_token
from serving.errors import InputError, ServingError
from serving.log_writer import PredictionLog
from serving.metrics import ServiceMetrics
from serving.model import serving_client
from serving.predictor import Predictor
from serving.routes import infer, invocations, json_response, predict, private, public
from serving.settings import ServeSettings

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """Build the service; the model loads in the lifespan, not here (also a uvicorn factory)."""
    settings = settings or ServeSettings()  # type: ignore[call-arg]
    metrics = ServiceMetrics()
    app = FastAPI(
        title="prefect-mlops prediction service",
        summary=f"Serves {settings.model_uri}",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.token = None
    app.include_router(public)
    app.include_router(private)
    app.add_exception_handler(ServingError, _serving_error)
    app.add_middleware(PredictionLane, routes=private.routes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees every request
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServeSettings = app.state.settings
    app.state.token = await _resolve_token(settings)
    log = PredictionLog(
        open_store(settings.log_url, settings.log_dir),
        app.state.metrics,
        flush_seconds=settings.log_flush_seconds,
        queue_size=settings.log_queue_size,
    )
    log.start()
    predictor = Predictor(settings, serving_client(settings), log, app.state.metrics)
    app.state.predictor = predictor
    app.state.log = log
    await run_in_threadpool(predictor.try_refresh)
    poller = (
        asyncio.create_task(_follow_alias(predictor, settings.poll_seconds))
        if settings.poll_seconds > 0
        else None
    )
    try:
        yield
    finally:
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        await run_in_threadpool(log.close)


async def _follow_alias(predictor: Predictor, seconds: float) -> None:
    """Poll the alias; a new version is loaded off the event loop and swapped in whole."""
    while True:
        await asyncio.sleep(seconds)
        await run_in_threadpool(predictor.try_refresh)


async def _resolve_token(settings: ServeSettings) -> bytes | None:
    """The bearer token from the environment, or else from a Prefect Secret block."""
    if settings.token is not None:
        return settings.token.get_secret_value().encode()
    if settings.token_secret_block:
        from prefect.blocks.system import Secret

        try:
            secret = await Secret.aload(settings.token_secret_block)
        except ValueError as exc:  # fail closed, naming the setting: never serve without auth
            raise ConfigError(
                f"MLOPS_SERVE_TOKEN_SECRET_BLOCK: Prefect Secret block "
                f"{settings.token_secret_block!r} cannot be loaded: {exc}"
            ) from exc
        return str(secret.get()).encode()
    return None


async def _serving_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServingError)
    body: dict[str, Any] = {"error_code": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, InputError):
        body["field"] = exc.field
    return json_response(body, status_code=exc.status_code)


Handler = Callable[[Request, Predictor], Awaitable[Response]]


class PredictionLane:
    """Sends the hot POST routes straight to their endpoint functions.

    The routes stay declared on FastAPI (OpenAPI, other methods, the same endpoint code); the
    lane skips FastAPI's per-request routing and dependency solving, a measurable share of a
    single-row request (see bench/serving). Auth is the same `require_token` check.
    """

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        declared = {getattr(r, "path", None): r for r in routes}
        self.lanes: dict[str, tuple[BaseRoute, Handler]] = {
            "/predict": (declared["/predict"], predict),
            "/invocations": (declared["/invocations"], invocations),
        }
        self.infer_route = declared["/v2/models/{name}/infer"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self._match(scope) if scope["type"] == "http" else None
        if lane is None:
            await self.app(scope, receive, send)
            return
        scope["route"], handle = lane
        request = Request(scope, receive)
        try:
            await require_token(request)
            response = await handle(request, request.app.state.predictor)
        except HTTPException as exc:
            response = json_response({"detail": exc.detail}, exc.status_code)
            response.headers.update(exc.headers or {})
        except ServingError as exc:
            response = await _serving_error(request, exc)
        await response(scope, receive, send)

    def _match(self, scope: Scope) -> tuple[BaseRoute, Handler] | None:
        if scope["method"] != "POST":
            return None
        path: str = scope["path"]
        if path in self.lanes:
            return self.lanes[path]
        name = path.removeprefix("/v2/models/").removesuffix("/infer")
        if len(name) == len(path) - 17 and name and "/" not in name:
            return self.infer_route, functools.partial(infer, name)
        return None


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (pure ASGI: no extra task)."""

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], metrics: ServiceMetrics
    ) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(route, status, time.perf_counter() - started)
