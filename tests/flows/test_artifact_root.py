"""Artifacts addressed by URI (issue 15): a training run on one host keeps its snapshot and
splits under an S3 artifact root (moto's S3 API on loopback), and another host, whose working
directory and local artifact folder hold none of its files, reads them back by URI alone."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from flows.monitoring import MonitoringParams, monitoring_flow
from flows.training import TrainingParams, training_flow
from prefect_mlops.config import load_config
from prefect_mlops.monitoring import ReferenceDataError, WindowSpec
from prefect_mlops.monitoring.reference import resolve_monitored_model
from prefect_mlops.settings import Settings
from tasks.schema import derive_schema
from tests.conftest import BIKESHARE_CSV, ROOT, fast_config_dict, write_config
from tests.s3 import S3Server, moto_s3

MODEL = "bikeshare-demand"


def checkout(folder: Path) -> Path:
    """A host's own checkout: its copy of the GX project and of the pipeline config."""
    folder.mkdir(parents=True)
    shutil.copytree(
        ROOT / "great_expectations",
        folder / "great_expectations",
        ignore=shutil.ignore_patterns("uncommitted"),
    )
    source = {"kind": "csv", "path": str(BIKESHARE_CSV)}
    write_config(folder / "bikeshare.yaml", fast_config_dict(source=source))
    return folder


def host_environment(folder: Path, s3: S3Server, root: str, tracking_uri: str) -> dict[str, str]:
    return {
        **s3.environment(root),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLOPS_GX_ROOT": str(folder / "great_expectations"),
        "MLOPS_LOCAL_ARTIFACT_ROOT": str(folder / "artifacts"),
    }


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[dict]:
    """One version trained on host A with the artifact root on S3; host A's local copies of the
    snapshot and splits are then deleted, so only the bucket holds them."""
    base = tmp_path_factory.mktemp("two-hosts")
    tracking = base / "tracking"  # stands in for the tracking server both hosts reach
    tracking.mkdir()
    shutil.copy(mlflow_template, tracking / "mlflow.db")
    with moto_s3() as s3:
        root = f"s3://{s3.new_bucket()}/mlops"
        host_a = checkout(base / "host-a")
        tracking_uri = f"sqlite:///{tracking / 'mlflow.db'}"
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(host_a)
            for key, value in host_environment(host_a, s3, root, tracking_uri).items():
                patch.setenv(key, value)
            result = training_flow(TrainingParams(config_path=str(host_a / "bikeshare.yaml")))
        shutil.rmtree(host_a / "artifacts" / "cache")
        yield {
            "base": base,
            "s3": s3,
            "root": root,
            "tracking_uri": tracking_uri,
            "result": result,
        }


@pytest.fixture
def host_b(shared: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A second host: its own checkout and working directory, nothing of host A's on disk."""
    folder = checkout(tmp_path / "host-b")
    monkeypatch.chdir(folder)
    env = host_environment(folder, shared["s3"], shared["root"], shared["tracking_uri"])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return folder


def objects(shared: dict, folder: str) -> list[str]:
    prefix = f"{shared['root']}/{folder}".removeprefix("s3://")
    return [f"s3://{key}" for key in shared["s3"].filesystem().find(prefix)]


def test_training_stores_its_snapshot_and_splits_under_the_root_and_tags_their_uris(
    shared: dict,
) -> None:
    result = shared["result"]
    assert result.promoted
    snapshot_uri = f"{shared['root']}/snapshots/{result.snapshot.fingerprint}.parquet"
    assert result.snapshot.uri == snapshot_uri
    assert objects(shared, "snapshots") == [snapshot_uri]
    splits = objects(shared, "splits")
    assert [uri.rsplit("/", 1)[-1] for uri in splits] == ["holdout.parquet", "train.parquet"]
    client = MlflowClient(shared["tracking_uri"])
    assert client.get_model_version(MODEL, "1").tags["data_snapshot"] == snapshot_uri
    sources = [i.dataset.source for i in client.get_run(result.mlflow_run_id).inputs.dataset_inputs]
    assert sorted(sources) == sorted(f'{{"uri": "{uri}"}}' for uri in splits)


def test_another_host_derives_the_schema_from_the_snapshot_uri(shared: dict, host_b: Path) -> None:
    config = load_config(host_b / "bikeshare.yaml")
    schema = derive_schema.fn(shared["result"].snapshot, config)
    assert schema.target == config.target and "temp" in schema.numeric
    cached = list((host_b / "artifacts" / "cache").rglob("*.parquet"))
    assert [p.name for p in cached] == [f"{shared['result'].snapshot.fingerprint}.parquet"]


def test_another_host_monitors_the_version_by_its_reference_uri(shared: dict, host_b: Path) -> None:
    window = host_b / "july.parquet"
    data = pd.read_csv(BIKESHARE_CSV)
    data[pd.to_datetime(data["timestamp"]).dt.month == 7].to_parquet(window, index=False)
    params = MonitoringParams(
        config_path=str(host_b / "bikeshare.yaml"), window=WindowSpec(dataset_path=str(window))
    )
    summary = monitoring_flow(params)
    assert summary.reference_snapshot == shared["result"].snapshot.uri
    assert summary.drift is not None and summary.drift.quality is not None
    cached = {p.name for p in (host_b / "artifacts" / "cache").rglob("*.parquet")}
    assert cached == {f"{shared['result'].snapshot.fingerprint}.parquet", "holdout.parquet"}
    assert Settings().monitoring_dir.is_relative_to(host_b)
    run = MlflowClient(shared["tracking_uri"]).get_run(str(summary.mlflow_run_id))
    sources = {i.dataset.source for i in run.inputs.dataset_inputs}
    assert f'{{"uri": "{summary.reference_snapshot}"}}' in sources  # logged by its URI
    folder = run.data.tags["monitoring.folder"]
    assert folder.startswith(f"{shared['root']}/monitoring/{MODEL}/")
    stored = objects(shared, folder.removeprefix(f"{shared['root']}/"))
    assert {f"{folder}/report.html", f"{folder}/summary.json"} <= set(stored)


def test_a_missing_reference_is_an_error_naming_its_uri(shared: dict, host_b: Path) -> None:
    uri = shared["result"].snapshot.uri
    shared["s3"].filesystem().rm_file(uri.removeprefix("s3://"))
    client = MlflowClient(shared["tracking_uri"])
    with pytest.raises(ReferenceDataError, match=re.escape(f"is missing: {uri}")):
        resolve_monitored_model(client, MODEL, "champion")
