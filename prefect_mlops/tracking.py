"""MLflow access for tasks: a client bound to the settings, never a global set at import."""

from __future__ import annotations

import time

import mlflow
import numpy as np
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus
from mlflow.tracking import MlflowClient

from prefect_mlops.config import PipelineConfig
from prefect_mlops.lineage import FLOW_RUN_TAG, RunOrigin, describe_dataset, lineage_tags
from prefect_mlops.names import confined
from prefect_mlops.registry import registry_client
from prefect_mlops.results import CandidateSpec, PreparedData
from prefect_mlops.settings import Settings


def mlflow_client(settings: Settings) -> MlflowClient:
    """A client for the configured tracking and registry stores."""
    return registry_client(settings.tracking_uri, settings.registry_uri)


def use_tracking(settings: Settings) -> None:
    """Point MLflow's fluent API (log_model, load_model, `models:/` URIs) at the configured stores.

    Called by the tasks that need it, never at import. It is process-wide (MLflow also exports it
    to the environment), so it is only ever set to the one Settings a process runs with; it is not
    undone afterwards because undoing it also deletes MLFLOW_TRACKING_URI from the environment.
    """
    mlflow.set_tracking_uri(settings.tracking_uri)
    if settings.registry_uri:
        mlflow.set_registry_uri(settings.registry_uri)


def ensure_experiment(client: MlflowClient, name: str, settings: Settings) -> str:
    """The id of experiment `name`, created (with a local artifact folder when local) if absent."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if settings.is_local_tracking:
        location = confined(settings.mlflow_artifact_dir, name, field="experiment_name").as_uri()
    return client.create_experiment(name, artifact_location=location)


def log_candidate_run(
    client: MlflowClient,
    parent_run_id: str,
    spec: CandidateSpec,
    metric: str,
    fold_scores: np.ndarray,
) -> str:
    """One finished nested run under the training run: the candidate's parameters and CV score."""
    parent = client.get_run(parent_run_id)
    run = client.create_run(
        parent.info.experiment_id,
        run_name=spec.label,
        tags={"mlflow.parentRunId": parent_run_id, "candidate": spec.name},
    )
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        params=[Param(k, str(v)) for k, v in {"estimator": spec.estimator, **spec.params}.items()],
        metrics=[
            Metric(f"cv_{metric}_mean", float(fold_scores.mean()), now, 0),
            Metric(f"cv_{metric}_std", float(fold_scores.std()), now, 0),
        ],
    )
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def start_training_run(
    client: MlflowClient,
    experiment_id: str,
    config: PipelineConfig,
    data: PreparedData,
    origin: RunOrigin,
) -> str:
    """Open the parent MLflow run of a training run: lineage tags, parameters, dataset inputs."""
    run = client.create_run(
        experiment_id,
        run_name=f"train-{origin.flow_run_name if origin.flow_run_name != 'none' else config.name}",
        tags={
            **lineage_tags(data.snapshot, data.validation, config, origin),
            "trigger_reason": origin.reason,
        },
    )
    run_id = str(run.info.run_id)
    params = {
        "task": str(config.task),
        "target": config.target,
        "split_strategy": config.split.strategy,
        "test_size": config.split.test_size,
        "seed": config.seed,
        "cv_folds": config.tuning.cv_folds,
        "train_rows": data.split.train_rows,
        "holdout_rows": data.split.holdout_rows,
    }
    client.log_batch(run_id, params=[Param(key, str(value)) for key, value in params.items()])
    name = f"{config.name}-{data.snapshot.fingerprint}"
    inputs = [
        DatasetInput(
            describe_dataset(uri, name, context)._to_mlflow_entity(),
            [InputTag("mlflow.data.context", context)],
        )
        for context, uri in (
            ("training", data.split.train_uri),
            ("holdout", data.split.holdout_uri),
        )
    ]
    client.log_inputs(run_id, datasets=inputs)
    return run_id


def fail_open_runs(client: MlflowClient, flow_run_id: str) -> None:
    """Mark every still-running MLflow run of a Prefect flow run as FAILED."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    query = f"tags.`{FLOW_RUN_TAG}` = '{flow_run_id}' and attributes.status = 'RUNNING'"
    for run in client.search_runs(experiments, filter_string=query):
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
