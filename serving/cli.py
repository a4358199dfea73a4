"""`mlops serve`: run the prediction service with uvicorn.

Every option defaults to its `MLOPS_SERVE_*` variable; an option left out leaves the variable,
and so the service's own default (`serving.settings.ServeSettings`), alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Serve a registered model over REST.")


def serving_environment(
    model: str,
    alias: str | None = None,
    poll_seconds: float | None = None,
    onnx: bool | None = None,
) -> dict[str, str]:
    """The `MLOPS_SERVE_*` variables every worker process reads, for the options given."""
    chosen = {
        "MLOPS_SERVE_MODEL_NAME": model,
        "MLOPS_SERVE_ALIAS": alias,
        "MLOPS_SERVE_POLL_SECONDS": None if poll_seconds is None else str(poll_seconds),
        "MLOPS_SERVE_USE_ONNX": None if onnx is None else str(onnx).lower(),
    }
    return {key: value for key, value in chosen.items() if value is not None}


def served_model_name(
    model: str | None, config: Path | None, typed: frozenset[str] = frozenset()
) -> str:
    """The --model option, or the config's registered model name; checked by the name rule.

    `typed` names the options given on the command line: they win over one that came from
    the environment (MLOPS_CONFIG, MLOPS_SERVE_MODEL_NAME).
    """
    from prefect_mlops.config import load_config
    from prefect_mlops.errors import ConfigError
    from prefect_mlops.names import check_name

    if model is not None and config is not None:
        if "model" in typed and "config" not in typed:
            config = None  # --model beats $MLOPS_CONFIG
        elif "config" in typed and "model" not in typed:
            model = None  # --config beats $MLOPS_SERVE_MODEL_NAME
    if config is not None:
        name = load_config(config).registered_model_name
        if model is not None and model != name:
            raise ConfigError(f"--model {model!r} is not {config}'s registered model {name!r}")
        return name
    if model is None:
        raise ConfigError("name the model: --config PIPELINE.yaml or --model NAME")
    return check_name(model, "--model")


@app.command()
def serve(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", envvar="MLOPS_CONFIG", help="pipeline YAML: serve its model"
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            envvar="MLOPS_SERVE_MODEL_NAME", help="registered model (instead of --config)"
        ),
    ] = None,
    alias: Annotated[
        str | None,
        typer.Option(envvar="MLOPS_SERVE_ALIAS", help="alias to follow", show_default="champion"),
    ] = None,
    host: Annotated[str, typer.Option(envvar="MLOPS_SERVE_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="MLOPS_SERVE_PORT")] = 8080,
    workers: Annotated[int, typer.Option(min=1, envvar="MLOPS_SERVE_WORKERS")] = 1,
    poll_seconds: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            envvar="MLOPS_SERVE_POLL_SECONDS",
            help="alias polling interval; 0 disables",
            show_default="30",
        ),
    ] = None,
    onnx: Annotated[
        bool | None,
        typer.Option(
            "--onnx/--no-onnx",
            envvar="MLOPS_SERVE_USE_ONNX",
            help="compile to ONNX when parity holds",
            show_default="on",
        ),
    ] = None,
) -> None:
    """Serve the champion (or --alias) of a config's model; token, log, limits: MLOPS_SERVE_*."""
    import uvicorn

    from prefect_mlops.errors import MlopsError
    from prefect_mlops.runtime import refuse_pickle_loading

    try:
        typed = frozenset(
            key
            for key in ("model", "config")
            if getattr(ctx.get_parameter_source(key), "name", None) == "COMMANDLINE"
        )
        name = served_model_name(model, config, typed)  # before any server or worker starts
    except MlopsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc

    refuse_pickle_loading()  # in the environment every worker process inherits
    # Each worker process builds its own app from the environment (uvicorn factory).
    os.environ.update(serving_environment(name, alias, poll_seconds, onnx))
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="info",
    )
