"""The reference side: the monitored version, the snapshot it was trained on, its estimator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from prefect_mlops.artifact_store import ArtifactStore, is_remote
from prefect_mlops.errors import ArtifactNotFoundError
from prefect_mlops.metrics import POSITIVE_LABEL_TAG, decode_label
from prefect_mlops.monitoring.records import MonitoredModel, ReferenceDataError
from prefect_mlops.packaging import load_pipeline
from prefect_mlops.registry import find_version
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import use_tracking

HOLDOUT_PREFIX = "holdout_"
# The MLflow dataset-input tag naming the role of a training run's split ("holdout").
DATASET_CONTEXT_TAG = "mlflow.data.context"


def logged_holdout(run: Run | None) -> str | None:
    """The URI of the holdout split a training run logged as its `holdout` dataset input (the
    quality report's reference: rows the model never trained on), there or not: a local path, or
    the artifact store's URL."""
    inputs = run.inputs.dataset_inputs if run is not None and run.inputs else []
    for item in inputs:
        if not any(t.key == DATASET_CONTEXT_TAG and t.value == "holdout" for t in item.tags):
            continue
        try:
            uri = str(json.loads(item.dataset.source).get("uri", ""))
        except (ValueError, AttributeError):
            return None
        if is_remote(uri):
            return uri
        parsed = urlparse(uri)
        return str(Path(url2pathname(parsed.path)) if parsed.scheme == "file" else Path(uri))
    return None


def holdout_path(run: Run | None, store: ArtifactStore | None = None) -> str | None:
    """The training run's holdout split (`logged_holdout`), if it is still in its store."""
    path = logged_holdout(run)
    if not path:
        return None
    return path if (store or Settings().artifact_store()).exists(path) else None


def resolve_monitored_model(
    client: MlflowClient, name: str, alias: str, store: ArtifactStore | None = None
) -> MonitoredModel:
    """The version behind `alias`, its training snapshot (lineage tags), holdout metrics and,
    for a binary classifier, the positive class its training run recorded.

    The snapshot is fetched by its URI through `store` (the environment's when not given) into
    this host's cache: a version trained on another host is monitored from the shared root."""
    store = store or Settings().artifact_store()
    version = find_version(client, name, alias)
    if version is None:
        raise ReferenceDataError(f"registered model {name!r} has no alias {alias!r}")
    label = f"{name} v{version.version} (@{alias})"
    run_id = version.tags.get("mlflow_run_id") or version.run_id
    run = client.get_run(run_id) if run_id else None
    run_tags = run.data.tags if run else {}
    snapshot = version.tags.get("data_snapshot") or run_tags.get("data_snapshot")
    if not snapshot:
        raise ReferenceDataError(
            f"{label} has no data_snapshot lineage tag on the version or its run {run_id}: "
            "the data it was trained on is unknown, so it cannot be monitored"
        )
    try:
        store.localize(snapshot)
    except ArtifactNotFoundError as missing:
        raise ReferenceDataError(
            f"reference snapshot of {label} is missing: {snapshot} (data_fingerprint "
            f"{version.tags.get('data_fingerprint', '?')}); restore it or retrain the model"
        ) from missing
    metrics = run.data.metrics if run else {}
    holdout = holdout_path(run, store)
    return MonitoredModel(
        name=name,
        alias=alias,
        version=str(version.version),
        run_id=str(run_id),
        snapshot_uri=snapshot,
        fingerprint=version.tags.get("data_fingerprint", ""),
        baseline={
            key.removeprefix(HOLDOUT_PREFIX): float(value)
            for key, value in metrics.items()
            if key.startswith(HOLDOUT_PREFIX)
        },
        positive_label=decode_label(run_tags.get(POSITIVE_LABEL_TAG)),
        holdout_uri=holdout,
        missing_holdout=None if holdout else logged_holdout(run),
    )


def load_estimator(model: MonitoredModel, settings: Settings) -> Any:
    """The monitored version's fitted scikit-learn pipeline, from the registry."""
    use_tracking(settings)
    uri = f"models:/{model.name}/{model.version}"
    return load_pipeline(uri, settings.tracking_uri, settings.registry_uri)
