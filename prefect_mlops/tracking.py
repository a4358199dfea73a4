"""MLflow access for tasks: a client bound to the settings, never a global set at import."""

from __future__ import annotations

import mlflow
from mlflow.tracking import MlflowClient

from prefect_mlops.registry import registry_client
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
