"""`mlops serve`: run the prediction service with uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer

app = typer.Typer(help="Serve a registered model over REST.")


@app.command()
def serve(
    model: Annotated[str, typer.Option(help="registered model name")],
    alias: Annotated[str, typer.Option(help="alias to follow")] = "champion",
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    poll_seconds: Annotated[float, typer.Option(help="alias polling interval; 0 disables")] = 30.0,
    onnx: Annotated[bool, typer.Option(help="compile to ONNX when parity holds")] = True,
) -> None:
    """Serve MODEL@ALIAS; token, log store and limits come from MLOPS_SERVE_* variables."""
    import uvicorn

    from prefect_mlops.errors import MlopsError
    from prefect_mlops.names import check_name
    from prefect_mlops.runtime import refuse_pickle_loading

    try:
        check_name(model, "--model")  # before any server or worker starts
    except MlopsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc

    refuse_pickle_loading()  # in the environment every worker process inherits
    # Each worker process builds its own app from the environment (uvicorn factory).
    os.environ.update(
        MLOPS_SERVE_MODEL_NAME=model,
        MLOPS_SERVE_ALIAS=alias,
        MLOPS_SERVE_POLL_SECONDS=str(poll_seconds),
        MLOPS_SERVE_USE_ONNX=str(onnx).lower(),
    )
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="info",
    )
