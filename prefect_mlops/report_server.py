"""The stack's report server: the HTML reports runs write (Data Docs, Evidently monitoring
reports), read-only over HTTP, so the Prefect UI can link them (see `report_links`).

`python -m prefect_mlops.report_server --host 127.0.0.1 --port 8090` (what `mlops up` starts).
It serves only the folders of `report_links.report_roots`, no symlinks out of them, no listing.
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from prefect_mlops.report_links import report_roots
from prefect_mlops.settings import Settings


class ReportFiles(StaticFiles):
    """Static files of a folder that may not exist yet (no run wrote a report): 404 until then."""

    async def check_config(self) -> None:
        if self.directory is not None and Path(self.directory).is_dir():
            await super().check_config()

    async def get_response(self, path: str, scope: Scope) -> Response:
        if self.directory is None or not Path(self.directory).is_dir():
            return PlainTextResponse("no reports here yet", status_code=404)
        return await super().get_response(path, scope)


def create_app(settings: Settings) -> Starlette:
    """An app serving each report folder under its prefix, with a health route and an index."""
    roots = report_roots(settings)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "roots": {k: str(v) for k, v in roots.items()}})

    async def index(request: Request) -> HTMLResponse:
        items = "".join(
            f'<li><a href="/{name}/">{html.escape(name)}</a></li>'
            for name, folder in roots.items()
            if folder.is_dir()
        )
        return HTMLResponse(
            f"<!doctype html><title>Reports</title><h1>Reports</h1><ul>{items}</ul>"
        )

    routes: list[BaseRoute] = [Route("/health", health), Route("/", index)]
    routes += [
        Mount(f"/{name}", app=ReportFiles(directory=folder, html=True, check_dir=False))
        for name, folder in roots.items()
    ]
    return Starlette(routes=routes)


def main(argv: list[str] | None = None) -> None:
    """Serve the reports of the environment's settings until stopped."""
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the HTML reports of runs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(Settings()), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
