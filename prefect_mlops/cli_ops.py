"""Operator commands: `mlops up` / `down` (the local stack), `mlops cleanup` (close what crashed
runs left) and `mlops status` (the stack's services, their process groups and health)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    from prefect_mlops.stack import StackSettings

Profile = Literal["local", "production"]
ProfileOption = Annotated[
    Profile | None,
    typer.Option(
        help="local: SQLite and files (the default); production: Prefect, MLflow and the "
        "prediction log on PostgreSQL (MLOPS_STACK_DATABASE_URL, else a local cluster). "
        "Default: $MLOPS_STACK_PROFILE",
        show_default=False,
    ),
]

# Set by the `mlops` entry point before Prefect is imported, unless the environment says
# otherwise: Prefect API calls give up in seconds (its defaults: 60 s per call, 5 retries with
# backoff), and temporary Prefect servers keep concurrency leases in files under PREFECT_HOME,
# so the recovery pass can free the champion lock of a killed holder (they run no repossessor).
LEASES_IN_FILES = "prefect.server.concurrency.lease_storage.filesystem"
OPS_RUNTIME_DEFAULTS = {
    "PREFECT_API_REQUEST_TIMEOUT": "20",
    "PREFECT_CLIENT_MAX_RETRIES": "3",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": LEASES_IN_FILES,
}


def _stack_settings(profile: Profile | None) -> StackSettings:
    from prefect_mlops.stack import StackSettings

    return StackSettings() if profile is None else StackSettings(profile=profile)


def _hide_password(value: str) -> str:
    """A URL with its password masked (an existing server's URL may carry one)."""
    if "://" not in value or "@" not in value:
        return value
    from sqlalchemy.engine import make_url

    return make_url(value).render_as_string(hide_password=True)


def up(profile: ProfileOption = None) -> None:
    """Start the local stack on loopback: Prefect server and worker, MLflow server, the service."""
    from prefect_mlops.errors import MlopsError
    from prefect_mlops.stack import stack_env, stack_up

    stack = _stack_settings(profile)
    try:
        for line in stack_up(stack, Path.cwd()):
            typer.echo(line)
    except MlopsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"\nPrefect UI      http://{stack.host}:{stack.prefect_port}")
    typer.echo(f"MLflow UI       {stack.mlflow_url}")
    typer.echo(f"Predictions     {stack.serve_url}/docs")
    typer.echo("\nUse the stack from this shell:")
    for key, value in stack_env(stack).items():
        typer.echo(f"export {key}={_hide_password(value)}")


def down(profile: ProfileOption = None) -> None:
    """Stop what `mlops up` started (and nothing else)."""
    from prefect_mlops.errors import MlopsError
    from prefect_mlops.stack import stack_down

    try:
        for line in stack_down(_stack_settings(profile), Path.cwd()):
            typer.echo(line)
    except MlopsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None


def cleanup() -> None:
    """Close what killed runs left: Running flow runs, RUNNING MLflow runs, half-made versions,
    half-done champion moves, expired lock leases (every flow also does this when it starts)."""
    from prefect_mlops.errors import MlopsError
    from prefect_mlops.settings import Settings
    from prefect_mlops.tracking import check_tracking_server
    from tasks.recovery import recover

    settings = Settings()
    try:
        check_tracking_server(settings)
        report = recover(settings)
    except MlopsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    for line in report.lines():
        typer.echo(line)


def status(profile: ProfileOption = None) -> None:
    """Show each stack service: running, orphaned, dead or stopped, its group and health."""
    from prefect_mlops.stack import stack_status

    statuses = stack_status(_stack_settings(profile), Path.cwd())
    for service in statuses:
        typer.echo(service.line())
    unwell = [s for s in statuses if s.state in ("orphaned", "dead") or s.healthy is False]
    if unwell:
        typer.echo("`mlops up` restarts dead and orphaned services")
        raise typer.Exit(code=1)


def register_ops(app: typer.Typer) -> None:
    """Add the operator commands to the `mlops` app."""
    app.command()(up)
    app.command()(down)
    app.command()(cleanup)
    app.command()(status)
