"""MLflow access for tasks: a client bound to the settings, never a global set at import."""

from __future__ import annotations

import time

import mlflow
import numpy as np
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from prefect_mlops.registry import registry_client
from prefect_mlops.results import CandidateSpec
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
        location = (settings.mlflow_artifact_dir / name).resolve().as_uri()
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
