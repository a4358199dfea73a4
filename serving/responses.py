"""How the service writes answers: orjson JSON bodies and the one translation of errors."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from serving.errors import InputError, ServingError
from serving.predictor import Prediction

# The errors `error_response` answers; anything else is a 500 from Starlette's outer handler.
TRANSLATED_ERRORS = (ServingError, HTTPException)


def json_response(
    body: Any, status_code: int = 200, prediction: Prediction | None = None
) -> Response:
    """orjson-encoded JSON; prediction answers carry request id, model version and rollout arm
    headers (`mixed` and both versions for a batch split between the arms)."""
    headers = None
    if prediction is not None:
        headers = {
            "x-request-id": prediction.request_id,
            "x-model-name": prediction.model.name,
            "x-model-version": prediction.version_label,
            "x-model-arm": prediction.arm_label,
        }
    content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content, status_code, headers, media_type="application/json")


async def error_response(request: Request, exc: Exception) -> Response:
    """The answer to an error of a request: the app's exception handler and the fast lane's."""
    if isinstance(exc, ServingError):
        body: dict[str, Any] = {"error_code": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, InputError):
            body["field"] = exc.field
        return json_response(body, status_code=exc.status_code)
    if isinstance(exc, HTTPException):  # FastAPI's own answer (401 with its headers, 404, 405)
        return await http_exception_handler(request, exc)
    raise exc
