"""A registered version whose MLmodel declares pickle is refused unread by every loader."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import mlflow
import pytest
import yaml
from fastapi.testclient import TestClient

from prefect_mlops.monitoring.records import MonitoredModel
from prefect_mlops.monitoring.reference import load_estimator
from prefect_mlops.packaging import UnsafeModelError, load_pipeline
from prefect_mlops.settings import Settings
from serving.app import create_app
from tests.serving.conftest import REGRESSOR, Store, make_settings, row


class _Probe:
    """Unpickling this creates `marker`: proof that the payload ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def register_pickle_probe(store: Store, tmp_path: Path, serialization: str) -> tuple[str, Path]:
    """The champion copied as a new champion: MLmodel declaring `serialization`, a probe payload."""
    marker = tmp_path / "probe-ran"
    champion = store.client.get_model_version_by_alias(REGRESSOR, "champion").version
    folder = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{REGRESSOR}/{champion}", dst_path=str(tmp_path), tracking_uri=store.uri
        )
    )
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    payload = folder / meta["flavors"]["sklearn"]["pickled_model"]
    payload.unlink()
    meta["flavors"]["sklearn"].update(serialization_format=serialization, pickled_model="model.pkl")
    meta["flavors"]["sklearn"].pop("skops_trusted_types", None)
    meta["flavors"]["python_function"]["model_path"] = "model.pkl"
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))
    (folder / "model.pkl").write_bytes(pickle.dumps(_Probe(marker)))
    experiment = store.client.get_experiment_by_name(REGRESSOR)
    assert experiment is not None
    run = store.client.create_run(experiment.experiment_id)
    store.client.log_artifacts(run.info.run_id, str(folder), "model")
    version = store.client.create_model_version(
        REGRESSOR, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    ).version
    store.client.set_registered_model_alias(REGRESSOR, "champion", version)
    return str(version), marker


@pytest.mark.parametrize("serialization", ["cloudpickle", "pickle"])
def test_the_service_refuses_a_pickle_version_and_says_why(
    store: Store, tmp_path: Path, serialization: str
) -> None:
    version, marker = register_pickle_probe(store, tmp_path, serialization)
    with TestClient(create_app(make_settings(store, tmp_path))) as client:
        health = client.get("/health")
        ready = client.get("/v2/health/ready")
        predicted = client.post("/predict", json={"records": [row()]})
    assert health.status_code == 503 and ready.status_code == 503
    reason = ready.json()["reason"]
    assert f"models:/{REGRESSOR}/{version}" in reason and repr(serialization) in reason
    assert health.json()["reason"] == reason
    assert predicted.status_code == 503
    assert not marker.exists()
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"


def test_scoring_and_monitoring_loaders_refuse_it_unread(store: Store, tmp_path: Path) -> None:
    version, marker = register_pickle_probe(store, tmp_path, "cloudpickle")
    with pytest.raises(UnsafeModelError, match=rf"models:/{REGRESSOR}/{version} .*'cloudpickle'"):
        load_pipeline(f"models:/{REGRESSOR}/{version}", store.uri)
    monitored = MonitoredModel(
        name=REGRESSOR,
        alias="champion",
        version=version,
        run_id="r",
        snapshot_uri="s",
        fingerprint="",
    )
    settings = Settings(tracking_uri=store.uri, artifact_root=tmp_path / "art")
    with pytest.raises(UnsafeModelError, match="cloudpickle"):
        load_estimator(monitored, settings)
    assert not marker.exists()


def test_a_skops_version_still_serves_with_pickle_switched_off(client: TestClient) -> None:
    assert client.get("/v2/health/ready").status_code == 200
    assert client.post("/predict", json={"records": [row()]}).status_code == 200
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
