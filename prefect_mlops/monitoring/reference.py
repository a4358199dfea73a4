"""The reference side: the monitored version, the snapshot it was trained on, its estimator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from prefect_mlops.metrics import POSITIVE_LABEL_TAG, decode_label
from prefect_mlops.monitoring.records import MonitoredModel, ReferenceDataError
from prefect_mlops.packaging import load_pipeline
from prefect_mlops.registry import find_version
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import use_tracking

HOLDOUT_PREFIX = "holdout_"


def resolve_monitored_model(client: MlflowClient, name: str, alias: str) -> MonitoredModel:
    """The version behind `alias`, its training snapshot (lineage tags), holdout metrics and,
    for a binary classifier, the positive class its training run recorded."""
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
    if not Path(snapshot).is_file():
        raise ReferenceDataError(
            f"reference snapshot of {label} is missing: {snapshot} (data_fingerprint "
            f"{version.tags.get('data_fingerprint', '?')}); restore it or retrain the model"
        )
    metrics = run.data.metrics if run else {}
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
    )


def load_estimator(model: MonitoredModel, settings: Settings) -> Any:
    """The monitored version's fitted scikit-learn pipeline, from the registry."""
    use_tracking(settings)
    uri = f"models:/{model.name}/{model.version}"
    return load_pipeline(uri, settings.tracking_uri, settings.registry_uri)
