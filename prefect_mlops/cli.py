"""The `mlops` command line: thin wrappers that build settings and call flows or tasks."""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from prefect_mlops.cli_ops import OPS_RUNTIME_DEFAULTS, register_ops
from prefect_mlops.cli_rollout import register_rollout
from prefect_mlops.errors import ConfigError, MlopsError
from prefect_mlops.temporary_server import guard_temporary_servers, stop_orphaned_servers
from serving.cli import serve

if TYPE_CHECKING:
    from pydantic import BaseModel

# Every option also reads an environment variable: MLOPS_<COMMAND>_<OPTION> (e.g.
# MLOPS_MONITOR_HOURS), or the variable the setting behind it already has (MLOPS_CONFIG,
# MLOPS_SERVE_POLL_SECONDS, ...). An option given on the command line wins.
app = typer.Typer(
    no_args_is_help=True,
    help="prefect-mlops: the model lifecycle as Prefect flows.",
    context_settings={"auto_envvar_prefix": "MLOPS", "show_default": True},
)
suite_app = typer.Typer(no_args_is_help=True, help="Great Expectations suites.")
app.add_typer(suite_app, name="suite")

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", envvar="MLOPS_CONFIG", help="pipeline YAML")
]
ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="registered model (default: from --config)")
]
AliasOption = Annotated[
    str, typer.Option(help="which registered version: the one this alias points at")
]
T = TypeVar("T")
M = TypeVar("M", bound="BaseModel")


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
def main(
    debug: Annotated[
        bool, typer.Option(help="print tracebacks (also MLOPS_LOG_LEVEL=DEBUG)")
    ] = False,
) -> None:
    """prefect-mlops: the model lifecycle as Prefect flows."""
    for key, value in RUNTIME_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # Prefect's temporary server outlives a killed process: stop those left for this
    # PREFECT_HOME, and have a watchdog stop the one this command may start.
    for line in stop_orphaned_servers():
        typer.echo(line, err=True)
    guard_temporary_servers()
    if debug:
        os.environ["MLOPS_LOG_LEVEL"] = "DEBUG"


def _debugging() -> bool:
    return os.environ.get("MLOPS_LOG_LEVEL", "").upper() == "DEBUG"


def _model_name(model: str | None, config: Path) -> str:
    """The --model option checked against the naming rule, or the config's model name."""
    if model is not None:
        from prefect_mlops.names import check_name

        return check_name(model, "--model")
    from prefect_mlops.config import load_config

    return load_config(config).registered_model_name


def _fail(error: Exception) -> NoReturn:
    """One line naming what is wrong (the traceback too at debug level), then exit 1."""
    if _debugging():
        typer.echo("".join(traceback.format_exception(error)), err=True)
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


class _WithoutTraceback(logging.Formatter):
    """A console formatter that leaves a record's traceback out (the API log keeps it)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        plain = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return self.inner.format(plain)


def _quiet_console_tracebacks() -> None:
    """Prefect prints a failed run's traceback to the console; below debug level, only its line.

    Prefect's console handler sits on the root logger once Prefect is imported (importing a
    flow does); its API handler, which feeds the UI, keeps the traceback.
    """
    for handler in logging.getLogger().handlers:
        if type(handler).__name__ != "PrefectConsoleHandler":
            continue
        quiet = isinstance(handler.formatter, _WithoutTraceback)
        if _debugging() and isinstance(handler.formatter, _WithoutTraceback):
            handler.setFormatter(handler.formatter.inner)
        elif not _debugging() and not quiet:
            handler.setFormatter(_WithoutTraceback(handler.formatter))


def _run_flow(what: str, call: Callable[[], T]) -> T:
    """Run a flow for the CLI: a project error, or any other failure, becomes one line."""
    from prefect_mlops.preflight import check_servers
    from prefect_mlops.settings import Settings

    _quiet_console_tracebacks()
    try:
        check_servers(Settings())
        return call()
    except MlopsError as exc:
        _fail(exc)
    except Exception as exc:  # a bug or a library failure: named, its traceback at debug level
        hint = "" if _debugging() else " (traceback: `mlops --debug ...` or MLOPS_LOG_LEVEL=DEBUG)"
        _fail(RuntimeError(f"{what} failed: {type(exc).__name__}: {exc}{hint}"))


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
    from prefect_mlops.preflight import check_servers, load_checked_config
    from prefect_mlops.settings import Settings

    try:
        load_checked_config(config, Settings())  # in a second, before any server starts
        check_servers(Settings())
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
    if result.evaluation is None or result.best is None:  # a rerun: nothing trained
        typer.echo(f"{result.promotion_reason} (matched v{result.rerun_of})")
        return
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
def deploy(
    config: Annotated[
        list[Path] | None,
        typer.Option(
            "--config",
            "-c",
            help="deploy this model's train, monitor and score deployments and its retrain "
            "trigger, beside those already on the server (repeatable)",
            show_default=False,
        ),
    ] = None,
    prefect_file: Annotated[
        Path, typer.Option(help="deployments file (its pull steps and schedules are used)")
    ] = Path("prefect.yaml"),
) -> None:
    """Check the Prefect server and work pools, then create deployments.

    Without --config: every deployment of prefect.yaml. With --config: that model's own
    `train-<model>`, `monitor-<model>` and `score-<model>` and its `retrain-<model>` trigger.
    """
    from deployments.deploy import deploy_all, deploy_models

    try:
        if config:
            lines, code = deploy_models(list(config), prefect_file.resolve())
            for line in lines:
                typer.echo(line)
        else:
            code = deploy_all(prefect_file.resolve())
    except MlopsError as exc:
        _fail(exc)
    raise typer.Exit(code=code)


@app.command()
def score(
    source: Annotated[
        str,
        typer.Option(
            help="rows to score: a .csv or .parquet path, or a SQLAlchemy URL "
            "(with --source-table or --source-query)",
            show_default=False,
        ),
    ],
    destination: Annotated[
        str,
        typer.Option(
            help="where predictions go: a .csv or .parquet path (replaced), or a SQLAlchemy "
            "URL with --destination-table (appended)",
            show_default=False,
        ),
    ],
    config: ConfigOption = Path("configs/bikeshare.yaml"),
    alias: AliasOption = "champion",
    source_table: Annotated[str | None, typer.Option(help="table of a SQL --source")] = None,
    source_query: Annotated[str | None, typer.Option(help="query of a SQL --source")] = None,
    destination_table: Annotated[
        str | None, typer.Option(help="table of a SQL --destination")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="rows held in memory at once")] = 50_000,
    log: Annotated[bool, typer.Option(help="append the predictions to the prediction log")] = True,
) -> None:
    """Score a file or table with the config's model (its champion, or --alias), in chunks."""
    from prefect_mlops.locations import parse_destination, parse_source
    from prefect_mlops.preflight import load_checked_config
    from prefect_mlops.settings import Settings

    try:
        load_checked_config(config, Settings())
        found = parse_source(source, source_table, source_query)
        target = parse_destination(destination, destination_table)
    except MlopsError as exc:
        _fail(exc)
    from flows.scoring import ScoringParams, scoring_flow

    params = _params(
        ScoringParams,
        config_path=str(config),
        source=found,
        destination=target,
        alias=alias,
        chunk_rows=chunk_rows,
        log_predictions=log,
    )
    summary = _run_flow(f"scoring {found.describe()}", lambda: scoring_flow(params))
    logged = "; appended to the prediction log" if summary.logged else ""
    typer.echo(
        f"scored {summary.rows} rows in {summary.chunks} chunk(s) with {summary.model_name} "
        f"v{summary.model_version} -> {summary.output}{logged}"
    )


@app.command()
def monitor(
    config: ConfigOption = Path("configs/bikeshare.yaml"),
    hours: Annotated[
        float | None,
        typer.Option(help="the last N hours of the prediction log"),
    ] = None,
    days: Annotated[
        float | None,
        typer.Option(help="the last N days of the prediction log"),
    ] = None,
    rows: Annotated[int | None, typer.Option(min=1, help="at most the last N rows")] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(help="a .csv or .parquet file to monitor instead of the prediction log"),
    ] = None,
    log_dir: Annotated[
        Path | None,
        typer.Option(help="Parquet prediction log (default: <artifact root>/prediction_log)"),
    ] = None,
    log_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL of a SQL prediction log")
    ] = None,
    alias: AliasOption = "champion",
    events: Annotated[bool, typer.Option(help="emit Prefect events on a breach")] = True,
) -> None:
    """Compare recent traffic (or a dataset) with the model's training data; report drift.

    Without --hours, --days, --rows or --dataset: the whole prediction log of the model.
    """
    from prefect_mlops.monitoring import WindowSpec
    from prefect_mlops.preflight import load_checked_config
    from prefect_mlops.settings import Settings

    try:
        load_checked_config(config, Settings())
        window = _params(
            WindowSpec,
            hours=hours,
            days=days,
            rows=rows,
            dataset_path=None if dataset is None else str(dataset),
            log_dir=None if log_dir is None else str(log_dir),
            log_url=log_url,
        )
    except MlopsError as exc:
        _fail(exc)
    from flows.monitoring import MonitoringParams, monitoring_flow

    params = MonitoringParams(
        config_path=str(config), alias=alias, window=window, emit_events=events
    )
    summary = _run_flow(f"monitoring {config}", lambda: monitoring_flow(params))
    typer.echo(
        f"{summary.model_name} v{summary.model_version} (@{summary.alias}), {summary.window}: "
        f"{summary.current_rows} rows ({summary.labeled_rows} labelled): "
        f"{summary.decision.outcome}"
        + (f" - {summary.decision.reason}" if summary.decision.reason else "")
    )
    if summary.drift is not None:
        typer.echo(
            f"drifted features: {summary.drifted_share:.0%} {summary.drifted_columns}; "
            f"prediction drift: {summary.prediction_drift}; report: {summary.report_uri}"
        )
    if summary.events:
        typer.echo(f"events emitted: {', '.join(summary.decision.events)}")


def _params(model: type[M], **values: object) -> M:
    """A flow's parameter model from CLI options; a bad combination named as a ConfigError."""
    from pydantic import ValidationError

    from prefect_mlops.config import validation_problems

    try:
        return model.model_validate(values)
    except ValidationError as exc:
        _fail(ConfigError(validation_problems(exc, root="options")))


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
register_rollout(app)
