"""The API documentation (`/docs`, `/redoc`, `/openapi.json`), behind the same token as the API.

They name the served model and every route, so they are private like the rest; FastAPI's own
open copies are switched off in `serving.app`, and `MLOPS_SERVE_DOCS=false` removes these too.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from serving.auth import require_token

OPENAPI_URL = "/openapi.json"
docs = APIRouter(dependencies=[Depends(require_token)], include_in_schema=False)


@docs.get(OPENAPI_URL)
async def openapi(request: Request) -> dict[str, Any]:
    """The OpenAPI document of the service."""
    return request.app.openapi()


@docs.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over the OpenAPI document."""
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - docs")


@docs.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc over the OpenAPI document."""
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - ReDoc")
