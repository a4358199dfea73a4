"""Track tasks: the parent MLflow run of a training flow, opened, finished or failed."""

from __future__ import annotations

from mlflow.entities import RunStatus, RunTag
from prefect import task
from prefect.utilities.urls import url_for

from prefect_mlops.comparison import split_tags
from prefect_mlops.context import TrainingContext
from prefect_mlops.lineage import RunOrigin
from prefect_mlops.reruns import find_rerun
from prefect_mlops.results import ModelVersionRef, PreparedData
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import ensure_experiment, fail_open_runs, mlflow_client
from prefect_mlops.tracking import start_training_run as open_training_run
from tasks.policies import IO_RETRIES


@task(**IO_RETRIES, task_run_name="open experiment {ctx.config.experiment}")
def open_experiment(ctx: TrainingContext) -> str:
    """Connect to the tracking store and make sure the config's experiment exists; its id."""
    return ensure_experiment(mlflow_client(ctx.settings), ctx.config.experiment, ctx.settings)


def with_flow_run_url(origin: RunOrigin) -> RunOrigin:
    """The origin with the flow run's address in the Prefect UI, when the UI or API URL is known
    (a temporary server's is not: then the flow run id alone identifies it)."""
    if origin.flow_run_url or origin.flow_run_id == "none":
        return origin
    url = url_for("flow-run", obj_id=origin.flow_run_id)
    return origin.model_copy(update={"flow_run_url": url}) if url else origin


@task(**IO_RETRIES, task_run_name="start MLflow run of {ctx.model_name}")
def start_training_run(ctx: TrainingContext, experiment_id: str, data: PreparedData) -> str:
    """Open the parent MLflow run, tag its source, user, Prefect run and lineage (how the holdout
    was cut included: a later run's champion comparison reads it) and log the split as datasets."""
    client = mlflow_client(ctx.settings)
    origin = with_flow_run_url(ctx.origin)
    run_id = open_training_run(client, experiment_id, ctx.config, data, origin)
    tags = [RunTag(key, value) for key, value in split_tags(data.split.lineage).items()]
    client.log_batch(run_id, tags=tags)
    return run_id


@task(**IO_RETRIES, task_run_name="look for a {ctx.model_name} version of this snapshot")
def find_earlier_version(ctx: TrainingContext, data: PreparedData) -> ModelVersionRef | None:
    """The version already trained on this snapshot with this config: a rerun trains nothing."""
    client = mlflow_client(ctx.settings)
    return find_rerun(client, ctx.model_name, data.snapshot, ctx.config.fingerprint())


@task(task_run_name="finish MLflow training run")
def finish_training_run(run_id: str, settings: Settings) -> None:
    """Mark the parent MLflow run finished."""
    mlflow_client(settings).set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


def close_open_runs(settings: Settings, flow_run_id: str) -> None:
    """Mark every still-running MLflow run of a Prefect flow run as FAILED."""
    fail_open_runs(mlflow_client(settings), flow_run_id)
