"""The FastAPI application: the factory and its lifespan, where the model loads once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from prefect_mlops.prediction_log import open_store
from prefect_mlops.runtime import refuse_pickle_loading
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import bound_http_calls
from serving.auth import resolve_token
from serving.docs import docs
from serving.fast_lane import FastLane
from serving.log_writer import PredictionLog
from serving.metrics import MetricsMiddleware, ServiceMetrics
from serving.model import serving_client
from serving.predictor import Predictor
from serving.responses import TRANSLATED_ERRORS, error_response
from serving.routes import private, public
from serving.settings import ServeSettings

logger = logging.getLogger(__name__)


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """Build the service; the model loads in the lifespan, not here (also a uvicorn factory)."""
    settings = settings or ServeSettings()  # model_name comes from the environment
    metrics = ServiceMetrics()
    app = FastAPI(
        title="prefect-mlops prediction service",
        summary=f"Serves {settings.model_uri}",
        lifespan=_lifespan,
        exception_handlers=dict.fromkeys(TRANSLATED_ERRORS, error_response),
        # FastAPI's own copies are open to anyone; serving.docs serves them behind the token.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.token = None
    app.include_router(public)
    app.include_router(private)
    if settings.docs:
        app.include_router(docs)
    if settings.fast_lane:
        app.add_middleware(FastLane, routes=app.routes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees every request
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServeSettings = app.state.settings
    refuse_pickle_loading()  # before any model is read; see prefect_mlops.runtime
    bound_http_calls(Settings())  # a down registry fails a look-up in seconds, not minutes
    app.state.token = await resolve_token(settings)
    if app.state.token is None:
        logger.warning(
            "no bearer token is set (MLOPS_SERVE_TOKEN or MLOPS_SERVE_TOKEN_SECRET_BLOCK): "
            "every route, documentation included, answers without authentication"
        )
    log = PredictionLog(
        open_store(settings.log_url, settings.log_dir, settings.log_spool_dir),
        app.state.metrics,
        flush_seconds=settings.log_flush_seconds,
        queue_size=settings.log_queue_size,
    )
    log.start()
    predictor = Predictor(settings, serving_client(settings), log, app.state.metrics)
    app.state.predictor = predictor
    app.state.log = log
    predictor.start()
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
        await run_in_threadpool(predictor.close)  # shadow copies reach the log before it closes
        await run_in_threadpool(log.close)


async def _follow_alias(predictor: Predictor, seconds: float) -> None:
    """Poll the alias every `seconds` (a fixed schedule, so a slow load does not push the next
    look-up back); a new version is loaded and warmed on a thread of its own, never the event
    loop's nor one a heavy request waits for, and swapped in whole."""
    limiter = anyio.CapacityLimiter(1)
    due = time.monotonic()
    while True:
        due = max(due + seconds, time.monotonic())
        await asyncio.sleep(due - time.monotonic())
        await anyio.to_thread.run_sync(predictor.try_refresh, limiter=limiter)
