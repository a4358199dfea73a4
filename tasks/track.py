"""Track tasks: the parent MLflow run of a training flow, opened, finished or failed."""

from __future__ import annotations

from mlflow.entities import RunStatus
from prefect import task

from prefect_mlops.context import TrainingContext
from prefect_mlops.results import PreparedData
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import ensure_experiment, fail_open_runs, mlflow_client
from prefect_mlops.tracking import start_training_run as open_training_run
from tasks.policies import IO_RETRIES


@task(**IO_RETRIES)
def open_experiment(ctx: TrainingContext) -> str:
    """Connect to the tracking store and make sure the config's experiment exists; its id."""
    return ensure_experiment(mlflow_client(ctx.settings), ctx.config.experiment, ctx.settings)


@task(**IO_RETRIES)
def start_training_run(ctx: TrainingContext, experiment_id: str, data: PreparedData) -> str:
    """Open the parent MLflow run, tag its lineage and log the split as dataset inputs."""
    client = mlflow_client(ctx.settings)
    return open_training_run(client, experiment_id, ctx.config, data, ctx.origin)


@task
def finish_training_run(run_id: str, settings: Settings) -> None:
    """Mark the parent MLflow run finished."""
    mlflow_client(settings).set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


def close_open_runs(settings: Settings, flow_run_id: str) -> None:
    """Mark every still-running MLflow run of a Prefect flow run as FAILED."""
    fail_open_runs(mlflow_client(settings), flow_run_id)
