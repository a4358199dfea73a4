"""The `mlops` command line: thin wrappers that build settings and call flows or tasks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from prefect_mlops.cli_ops import OPS_RUNTIME_DEFAULTS, register_ops
from prefect_mlops.errors import MlopsError
from serving.cli import serve

app = typer.Typer(no_args_is_help=True, help="prefect-mlops: the model lifecycle as Prefect flows.")
suite_app = typer.Typer(no_args_is_help=True, help="Great Expectations suites.")
app.add_typer(suite_app, name="suite")

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="pipeline YAML")]
ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="registered model (default: from --config)")
]


# What every command needs before Prefect or MLflow is imported, unless the environment says
# otherwise: the temporary Prefect server gets time to start on a loaded machine (its default
# 20 s is too short on two busy cores), and nothing tries to phone home (there is no network).
RUNTIME_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_TELEMETRY": "false",
    "DO_NOT_TRACK": "true",
    **OPS_RUNTIME_DEFAULTS,
}


@app.callback()
def main() -> None:
    """prefect-mlops: the model lifecycle as Prefect flows."""
    for key, value in RUNTIME_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _model_name(model: str | None, config: Path) -> str:
    """The --model option checked against the naming rule, or the config's model name."""
    if model is not None:
        from prefect_mlops.names import check_name

        return check_name(model, "--model")
    from prefect_mlops.config import load_config

    return load_config(config).registered_model_name


def _fail(error: Exception) -> None:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@app.command()
def check(config: ConfigOption = Path("configs/bikeshare.yaml")) -> None:
    """Check a pipeline config (fields, estimators, files, suites) without running anything."""
    from prefect_mlops.preflight import load_checked_config
    from prefect_mlops.settings import Settings

    try:
        pipeline = load_checked_config(config, Settings())
    except MlopsError as exc:
        _fail(exc)
        return
    typer.echo(
        f"{config}: ok ({pipeline.registered_model_name}, {len(pipeline.candidates)} "
        "candidate families)"
    )


@app.command()
def train(config: ConfigOption = Path("configs/bikeshare.yaml")) -> None:
    """Run the training flow once, in-process (Prefect's temporary server when none is set)."""
    from prefect_mlops.preflight import load_checked_config
    from prefect_mlops.settings import Settings

    try:
        load_checked_config(config, Settings())  # in a second, before any server starts
    except MlopsError as exc:
        _fail(exc)
        return
    from flows.training import TrainingParams, training_flow

    try:
        result = training_flow(TrainingParams(config_path=str(config)))
    except MlopsError as exc:
        _fail(exc)
        return
    version = result.model_version
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in result.evaluation.metrics.items())
    typer.echo(f"best candidate: {result.best.spec.label} ({metrics})")
    typer.echo(f"registered: {version.name} v{version.version} aliases={version.aliases}")
    typer.echo("promoted to champion" if result.promoted else "champion kept")


@suite_app.command("init")
def suite_init(config: ConfigOption = Path("configs/bikeshare.yaml")) -> None:
    """Profile the config's data source into starting expectation suites for review."""
    from prefect_mlops.config import load_config
    from prefect_mlops.expectations.profile import init_suites
    from prefect_mlops.settings import Settings

    try:
        pipeline = load_config(config)
        names = init_suites(pipeline, Settings(), pipeline.source.read())
    except MlopsError as exc:
        _fail(exc)
        return
    typer.echo("wrote " + ", ".join(names) + "; review them under great_expectations/")


@suite_app.command("docs")
def suite_docs() -> None:
    """Build the Data Docs site from every stored validation result; print where it is."""
    from prefect_mlops.expectations.gx import build_data_docs, open_context
    from prefect_mlops.settings import Settings

    typer.echo(build_data_docs(open_context(Settings())) or "no Data Docs site configured")


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="model version to make champion")],
    model: ModelOption = None,
    config: ConfigOption = Path("configs/bikeshare.yaml"),
) -> None:
    """Make VERSION the champion by hand (the old champion becomes previous-champion)."""
    from prefect_mlops.settings import Settings
    from tasks.registry import promote_model

    try:
        ref = promote_model.fn(_model_name(model, config), version, "manual promotion", Settings())
    except MlopsError as exc:
        _fail(exc)
        return
    typer.echo(f"{ref.name} v{ref.version} is champion (aliases: {', '.join(ref.aliases)})")


@app.command()
def rollback(
    model: ModelOption = None, config: ConfigOption = Path("configs/bikeshare.yaml")
) -> None:
    """Restore the previous champion in one step."""
    from prefect_mlops.settings import Settings
    from tasks.registry import rollback_model

    try:
        ref = rollback_model.fn(_model_name(model, config), Settings())
    except MlopsError as exc:
        _fail(exc)
        return
    typer.echo(f"{ref.name} v{ref.version} is champion again (aliases: {', '.join(ref.aliases)})")


@app.command()
def up() -> None:
    """Start the local stack on loopback: Prefect server and worker, MLflow server, the service."""
    from prefect_mlops.stack import StackSettings, stack_env, stack_up

    stack = StackSettings()
    try:
        for line in stack_up(stack, Path.cwd()):
            typer.echo(line)
    except MlopsError as exc:
        _fail(exc)
        return
    typer.echo(f"\nPrefect UI      http://{stack.host}:{stack.prefect_port}")
    typer.echo(f"MLflow UI       {stack.mlflow_url}")
    typer.echo(f"Predictions     {stack.serve_url}/docs")
    typer.echo("\nUse the stack from this shell:")
    for key, value in stack_env(stack).items():
        typer.echo(f"export {key}={value}")


@app.command()
def down() -> None:
    """Stop what `mlops up` started (and nothing else)."""
    from prefect_mlops.stack import StackSettings, stack_down

    for line in stack_down(StackSettings(), Path.cwd()):
        typer.echo(line)


@app.command()
def deploy(
    prefect_file: Annotated[Path, typer.Option(help="deployments file")] = Path("prefect.yaml"),
) -> None:
    """Check the Prefect server and work pools, then create every deployment of prefect.yaml."""
    from deployments.deploy import deploy_all

    try:
        code = deploy_all(prefect_file.resolve())
    except MlopsError as exc:
        _fail(exc)
        return
    raise typer.Exit(code=code)


@app.command()
def simulate(
    workdir: Annotated[Path | None, typer.Option(help="landing data, config and log")] = None,
    replay_rows: Annotated[
        int | None,
        typer.Option(min=100, help="replay at most this many hours of Jul-Sep (default: all)"),
    ] = None,
) -> None:
    """Replay the seasons: train on Jan-Mar, serve, replay Jul-Sep, see drift retrain the model."""
    from deployments.simulate import run_simulation

    try:
        result = run_simulation(workdir=workdir, replay_rows=replay_rows)
    except MlopsError as exc:
        _fail(exc)
        return
    if result.new_champion:
        typer.echo(
            f"loop closed: v{result.first_champion} -> v{result.new_champion} champion, "
            f"served v{result.served_version_after}"
        )


app.command(name="serve")(serve)
register_ops(app)
