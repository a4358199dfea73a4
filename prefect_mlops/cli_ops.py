"""Operator commands: `mlops cleanup` (close what crashed runs left) and `mlops status` (the
stack's services, their process groups and health)."""

from __future__ import annotations

from pathlib import Path

import typer

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


def status() -> None:
    """Show each stack service: running, orphaned, dead or stopped, its group and health."""
    from prefect_mlops.stack import StackSettings, stack_status

    statuses = stack_status(StackSettings(), Path.cwd())
    for service in statuses:
        typer.echo(service.line())
    unwell = [s for s in statuses if s.state in ("orphaned", "dead") or s.healthy is False]
    if unwell:
        typer.echo("`mlops up` restarts dead and orphaned services")
        raise typer.Exit(code=1)


def register_ops(app: typer.Typer) -> None:
    """Add the operator commands to the `mlops` app."""
    app.command()(cleanup)
    app.command()(status)
