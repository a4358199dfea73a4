"""HTTP routes: each parses its protocol, then calls the predictor service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from serving.auth import require_token
from serving.errors import InputError, NotReadyError, PayloadTooLargeError
from serving.predictor import Prediction, Predictor
from serving.protocols.invocations import invocation_parser
from serving.protocols.open_inference import (
    columns_from_infer,
    infer_response,
    model_metadata_v2,
    parse_infer_request,
)
from serving.protocols.predict import (
    FeedbackRequest,
    PredictResponse,
    parse_feedback,
    predict_response,
)
from serving.responses import json_response
from serving.schema import Columns
from serving.traffic import Traffic

T = TypeVar("T")
# Bodies above this size are parsed and scored on a worker thread, not on the event loop.
INLINE_BODY_BYTES = 64 * 1024


async def get_predictor(request: Request) -> Predictor:
    """The app's predictor service (async: a sync dependency would cost a thread hop)."""
    return request.app.state.predictor


PredictorDep = Annotated[Predictor, Depends(get_predictor)]

public = APIRouter(tags=["liveness"])
private = APIRouter(dependencies=[Depends(require_token)])


@public.get("/health/live")
@public.get("/v2/health/live")
async def live() -> dict[str, bool]:
    """The process answers (no auth, reveals nothing)."""
    return {"live": True}


@private.get("/health", tags=["health"])
async def health(predictor: PredictorDep) -> Response:
    """Liveness and readiness, with the reason when not ready, and whether the registry answered
    the last alias look-up (a loaded model stays ready while the registry is down); the rollout
    served, and why one in the registry is not (the champion then answers everything)."""
    rollout, rollout_error = predictor.rollout_view()
    body = {
        "live": True,
        "ready": predictor.ready,
        "reason": predictor.not_ready_reason,
        "registry": predictor.registry.as_dict(),
        "rollout": rollout,
        "rollout_error": rollout_error,
    }
    return json_response(body, status_code=200 if predictor.ready else 503)


@private.get("/v2/health/ready", tags=["open inference protocol"])
@private.get("/ping", tags=["mlflow"])
async def ready(predictor: PredictorDep) -> Response:
    """200 once a model is loaded, else 503 with the reason; the registry's reachability apart."""
    body = {
        "ready": predictor.ready,
        "reason": predictor.not_ready_reason,
        "registry": predictor.registry.as_dict(),
    }
    return json_response(body, status_code=200 if predictor.ready else 503)


@private.get("/metadata", tags=["health"])
async def metadata(predictor: PredictorDep) -> dict[str, Any]:
    """Name, version, alias, engine, lineage tags and signature of the served model; the
    rollout sharing its traffic (mode, share, key, step, champion and challenger versions) or
    null, and why a rollout in the registry is not served."""
    model = predictor.model()
    rollout, rollout_error = predictor.rollout_view()
    return {
        "name": model.name,
        "version": model.version,
        "alias": model.alias,
        "engine": model.engine.name,
        "engine_note": model.engine_note,
        "run_id": model.run_id,
        "tags": model.tags,
        "classes": model.classes,
        "signature": model.signature,
        "input_schema": model.schema.json_schema(),
        "loaded_at": model.loaded_at,
        "rollout": rollout,
        "rollout_error": rollout_error,
    }


@private.get("/metrics", tags=["health"])
async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    registry = request.app.state.metrics
    return Response(registry.render(), media_type=registry.content_type)


@private.post(
    "/predict",
    tags=["predict"],
    responses={200: {"model": PredictResponse}},
    openapi_extra={
        "requestBody": {
            # The served model's own schema and example are filled in by serving.docs.
            "description": "records validated against the model signature (see /metadata)",
        }
    },
)
async def predict(request: Request, predictor: PredictorDep) -> Response:
    """Predict JSON records; the answer names the model version that computed it."""
    body = await read_body(request, predictor.settings.max_body_bytes)

    def score() -> Prediction:
        traffic = predictor.traffic()
        columns = traffic.champion.schema.validate_predict_request(body)
        return _score(predictor, traffic, columns, request)

    prediction = await _run(score, heavy=len(body) > INLINE_BODY_BYTES)
    return json_response(predict_response(prediction), prediction=prediction)


@private.post("/invocations", tags=["mlflow"])
async def invocations(request: Request, predictor: PredictorDep) -> Response:
    """`mlflow models serve` formats: JSON dataframe_split/records, instances, inputs; CSV."""
    parse = invocation_parser(request.headers.get("content-type"))
    body = await read_body(request, predictor.settings.max_body_bytes)

    def score() -> Prediction:
        traffic = predictor.traffic()
        return _score(predictor, traffic, parse(body, traffic.champion.schema), request)

    prediction = await _run(score, heavy=len(body) > INLINE_BODY_BYTES)
    return json_response({"predictions": prediction.predictions}, prediction=prediction)


@private.get("/v2", tags=["open inference protocol"])
async def server_metadata_v2() -> dict[str, Any]:
    """Open Inference Protocol server metadata."""
    return {"name": "prefect-mlops", "version": "1", "extensions": []}


@private.get("/v2/models/{name}", tags=["open inference protocol"])
async def model_metadata(name: str, predictor: PredictorDep) -> dict[str, Any]:
    """Open Inference Protocol model metadata (404 for a model not served here)."""
    return model_metadata_v2(predictor.model(name))


@private.get("/v2/models/{name}/ready", tags=["open inference protocol"])
async def model_ready(name: str, predictor: PredictorDep) -> dict[str, Any]:
    """Open Inference Protocol model readiness."""
    return {"name": predictor.model(name).name, "ready": True}


@private.post("/v2/models/{name}/infer", tags=["open inference protocol"])
async def infer(name: str, request: Request, predictor: PredictorDep) -> Response:
    """Open Inference Protocol inference: one input tensor per signature column."""
    body = await read_body(request, predictor.settings.max_body_bytes)

    def score() -> tuple[Prediction, str | None]:
        traffic = predictor.traffic(name)
        envelope = parse_infer_request(body)
        columns = columns_from_infer(envelope, traffic.champion.schema)
        return _score(predictor, traffic, columns, request), envelope.id

    prediction, request_id = await _run(score, heavy=len(body) > INLINE_BODY_BYTES)
    return json_response(infer_response(prediction, request_id), prediction=prediction)


@private.post(
    "/feedback",
    tags=["predict"],
    status_code=202,
    # The body is read raw (size-limited), so its schema is declared here for the docs.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": FeedbackRequest.model_json_schema()}},
        }
    },
)
async def feedback(request: Request, predictor: PredictorDep) -> Response:
    """Record the ground-truth label of a logged prediction, joined later by request id."""
    body = await read_body(request, predictor.settings.max_body_bytes)
    label = parse_feedback(body)
    # Off the event loop: an id no longer in memory is looked up in the log (a file scan or query).
    await run_in_threadpool(
        predictor.record_feedback, label.request_id, label.label, label.row_index
    )
    return json_response({"accepted": True, "request_id": label.request_id}, status_code=202)


@private.post("/reload", tags=["health"])
async def reload(predictor: PredictorDep) -> dict[str, Any]:
    """Load the version the alias points at now (no-op when unchanged)."""
    try:
        outcome = await run_in_threadpool(predictor.refresh)
    except Exception as exc:  # reported to the caller; the current model keeps serving
        raise NotReadyError(f"reload of {predictor.settings.model_uri} failed: {exc}") from exc
    return {"version": outcome.version, "previous": outcome.previous, "changed": outcome.changed}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError("body", f"{declared} bytes exceed the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError("body", f"more than the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise InputError("body", "the client disconnected before sending it all") from None
    return b"".join(chunks)


def _score(
    predictor: Predictor, traffic: Traffic, columns: Columns, request: Request
) -> Prediction:
    headers = request.headers
    key = headers.get("x-rollout-key") if traffic.splitting else None
    return predictor.predict(traffic, columns, headers.get("x-request-id"), key)


async def _run(work: Callable[[], T], heavy: bool) -> T:
    return await run_in_threadpool(work) if heavy else work()
