"""`mlops rollout status|abort|start MODEL`: a rollout's state, its end by hand, its start."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

rollout_app = typer.Typer(
    no_args_is_help=True, help="Progressive delivery: shadow, canary and A/B rollouts."
)
ModelArgument = Annotated[str, typer.Argument(help="registered model")]


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@rollout_app.command()
def status(model: ModelArgument) -> None:
    """Print MODEL's rollout state (mode, share, step, version) and its last step's evidence."""
    from prefect_mlops.errors import MlopsError
    from prefect_mlops.names import check_name
    from prefect_mlops.registry import CHAMPION, version_by_alias
    from prefect_mlops.rollout import read_rollout
    from prefect_mlops.rollout_gate import latest_evidence
    from prefect_mlops.settings import Settings
    from prefect_mlops.tracking import mlflow_client

    settings = Settings()
    try:
        name = check_name(model, "MODEL")
        client = mlflow_client(settings)
        state = read_rollout(client, name)
        champion = version_by_alias(client, name, CHAMPION)
        last = latest_evidence(settings.local_root, name)
    except MlopsError as exc:
        _fail(str(exc))
        return
    typer.echo(f"{name}: champion v{champion or '-'}")
    if state is None:
        typer.echo("no rollout: all traffic goes to the champion")
    else:
        age = time.time() - state.updated_at
        typer.echo(
            f"rollout of v{state.version}: mode {state.mode}, challenger share {state.share:.0%}, "
            f"step {state.step or '-'}, key {state.key or '-'}, flow run "
            f"{state.flow_run_id or '-'}, set {age:.0f} s ago"
        )
    if last is not None:
        outcome, evidence = last
        typer.echo(
            f"last step looked at: {evidence.step} of v{evidence.challenger_version} "
            f"({outcome}, {evidence.elapsed_seconds:.0f} s into the step)"
        )
        for rule in evidence.rules:
            detail = f" ({rule.detail})" if rule.detail else ""
            typer.echo(f"  {rule.rule}: {rule.status}, {rule.observed} [{rule.threshold}]{detail}")


@rollout_app.command()
def abort(model: ModelArgument) -> None:
    """Return all of MODEL's traffic to the champion now (its rollout flow stops at its next
    look, without promoting); the champion is not touched."""
    from prefect_mlops.errors import MlopsError
    from prefect_mlops.names import check_name
    from prefect_mlops.rollout import clear_rollout
    from prefect_mlops.settings import Settings
    from prefect_mlops.tracking import mlflow_client

    try:
        name = check_name(model, "MODEL")
        ended = clear_rollout(mlflow_client(Settings()), name)
    except MlopsError as exc:
        _fail(str(exc))
        return
    if ended is None:
        typer.echo(f"{name} had no rollout: all traffic already goes to the champion")
    else:
        typer.echo(
            f"rollout of {name} v{ended.version} ({ended.step}) aborted: all traffic "
            "goes to the champion"
        )


@rollout_app.command()
def start(
    model: ModelArgument,
    config: Annotated[
        Path, typer.Option("--config", "-c", envvar="MLOPS_CONFIG", help="pipeline YAML")
    ] = Path("configs/bikeshare.yaml"),
    version: Annotated[
        str | None, typer.Option(help="version to roll out (default: the challenger alias)")
    ] = None,
) -> None:
    """Run MODEL's rollout in-process with the config's `rollout:` steps (Prefect's temporary
    server when none is set); exits 1 unless the challenger was promoted."""
    from flows.rollout import RolloutParams, rollout_flow
    from prefect_mlops.config import load_config
    from prefect_mlops.errors import MlopsError

    try:
        name = load_config(config).registered_model_name
        if name != model:
            _fail(f"{config} configures model {name!r}, not {model!r}")
        result = rollout_flow(
            RolloutParams(config_path=str(config), version=version, reason="mlops rollout start")
        )
    except MlopsError as exc:
        _fail(str(exc))
        return
    typer.echo(f"{model} v{result.plan.challenger_version}: {result.outcome} ({result.reason})")
    if result.outcome != "promoted":
        raise typer.Exit(code=1)


def register_rollout(app: typer.Typer) -> None:
    """Add `mlops rollout ...` to the `mlops` app."""
    app.add_typer(rollout_app, name="rollout")
