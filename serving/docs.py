"""The API documentation (`/docs`, `/redoc`, `/openapi.json`), behind the same token as the API.

They name the served model and every route, so they are private like the rest; FastAPI's own
open copies are switched off in `serving.app`, and `MLOPS_SERVE_DOCS=false` removes these too.
Swagger UI and ReDoc come from `serving/static/` (vendored, see its README), never from a CDN,
so the pages render on a machine with no network. The OpenAPI document carries the served
model's own record schema and input example, so "Try it out" sends a request the model accepts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from serving.auth import require_token
from serving.model import LoadedModel

OPENAPI_URL = "/openapi.json"
STATIC_URL = "/docs/static"
STATIC_DIR = Path(__file__).parent / "static"
# The only files served from STATIC_DIR, with their media types (nothing else is reachable).
ASSETS = {
    "swagger-ui/swagger-ui-bundle.js": "text/javascript",
    "swagger-ui/swagger-ui.css": "text/css",
    "swagger-ui/favicon-32x32.png": "image/png",
    "redoc/redoc.standalone.js": "text/javascript",
}
# The ReDoc page may load from the service itself only: the vendored bundle no longer asks
# cdn.redoc.ly for its badge's logo (serving/static/README.md), and should a future bundle ask
# another host for anything, the browser refuses it before it leaves the machine.
# styled-components injects <style> tags; the search runs in a blob: worker.
REDOC_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
docs = APIRouter(dependencies=[Depends(require_token)], include_in_schema=False)


@docs.get(OPENAPI_URL)
async def openapi(request: Request) -> dict[str, Any]:
    """The OpenAPI document of the service, with the served model's schema and example."""
    predictor = request.app.state.predictor
    model = predictor.model() if predictor.ready else None
    return document_for(request.app.openapi(), model)


@docs.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over the OpenAPI document (self-hosted assets)."""
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{request.app.title} - docs",
        swagger_js_url=f"{STATIC_URL}/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC_URL}/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{STATIC_URL}/swagger-ui/favicon-32x32.png",
    )


@docs.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc over the OpenAPI document (self-hosted assets, no web fonts)."""
    page = get_redoc_html(
        openapi_url=OPENAPI_URL,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{STATIC_URL}/redoc/redoc.standalone.js",
        redoc_favicon_url=f"{STATIC_URL}/swagger-ui/favicon-32x32.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = REDOC_POLICY
    return page


@docs.get(STATIC_URL + "/{folder}/{name}")
async def asset(folder: str, name: str) -> FileResponse:
    """One vendored Swagger UI or ReDoc file (404 for anything not listed in ASSETS)."""
    key = f"{folder}/{name}"
    if key not in ASSETS:
        raise HTTPException(404, f"no documentation asset {key!r}")
    return FileResponse(
        STATIC_DIR / key, media_type=ASSETS[key], headers={"Cache-Control": "private, max-age=3600"}
    )


def document_for(document: dict[str, Any], model: LoadedModel | None) -> dict[str, Any]:
    """`document` with /predict's body described by `model`'s record schema and example, and
    /feedback's example naming one of its labels (unchanged when no model is loaded yet)."""
    if model is None:
        return document
    doc = copy.deepcopy(document)
    paths = doc.get("paths", {})
    record = model.schema.json_schema()
    predict = paths.get("/predict", {}).get("post")
    if predict is not None:
        body = predict.setdefault("requestBody", {})
        body["required"] = True
        media: dict[str, Any] = {
            "schema": {
                "type": "object",
                "required": ["records"],
                "additionalProperties": False,
                "properties": {"records": {"type": "array", "minItems": 1, "items": record}},
            }
        }
        if model.example:
            media["example"] = {"records": model.example}
        body["content"] = {"application/json": media}
    invocations = paths.get("/invocations", {}).get("post")
    if invocations is not None and model.example:
        invocations["requestBody"] = {
            "content": {"application/json": {"example": {"dataframe_records": model.example}}}
        }
    feedback = paths.get("/feedback", {}).get("post")
    if feedback is not None:
        label = model.classes[0] if model.classes else 0.0
        content = feedback.setdefault("requestBody", {}).setdefault("content", {})
        content.setdefault("application/json", {})["example"] = {
            "request_id": "0123456789abcdef0123456789abcdef",  # as /predict returned it
            "label": label,
            "row_index": 0,
        }
    return doc
