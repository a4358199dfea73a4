"""The monitoring flow end to end: real Prefect (test server), MLflow (SQLite), GX and Evidently.

One model is trained on January-March of the bike-sharing data (module fixture); each test then
monitors a current window written as a dataset or a prediction log.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from flows.monitoring import MonitoringParams, monitoring_flow
from flows.training import TrainingParams, training_flow
from prefect_mlops.monitoring import (
    DATA_INVALID,
    DRIFT_DETECTED,
    PERFORMANCE_DEGRADED,
    ReferenceDataError,
    WindowSpec,
    model_resource_id,
)
from prefect_mlops.settings import Settings
from tests.conftest import BIKESHARE_CSV, ROOT, fast_config_dict, write_config

MODEL = "bikeshare-demand"
FEATURES = [
    "season", "mnth", "day", "hr", "holiday", "weekday", "workingday",
    "weathersit", "temp", "atemp", "hum", "windspeed",
]  # fmt: skip


def months(frame: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    month = pd.to_datetime(frame["timestamp"]).dt.month
    return frame.loc[(month >= first) & (month <= last)].reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[dict]:
    """A champion trained on January-March, in its own MLflow store and artifact root."""
    root = tmp_path_factory.mktemp("monitoring")
    shutil.copy(mlflow_template, root / "mlflow.db")
    shutil.copytree(
        ROOT / "great_expectations",
        root / "great_expectations",
        ignore=shutil.ignore_patterns("uncommitted"),
    )
    data = pd.read_csv(BIKESHARE_CSV)
    months(data, 1, 3).to_csv(root / "winter.csv", index=False)
    config = write_config(
        root / "bikeshare.yaml",
        fast_config_dict(source={"kind": "csv", "path": str(root / "winter.csv")}),
    )
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "MLOPS_ARTIFACT_ROOT": str(root / "artifacts"),
        "MLOPS_GX_ROOT": str(root / "great_expectations"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        result = training_flow(TrainingParams(config_path=str(config)))
        yield {"root": root, "config": config, "data": data, "result": result}


def monitor(trained: dict, frame: pd.DataFrame, name: str, **window: object):
    path = trained["root"] / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    spec = WindowSpec(dataset_path=str(path), **window)
    return monitoring_flow(MonitoringParams(config_path=str(trained["config"]), window=spec))


def test_seasonal_shift_raises_drift_alarm(trained) -> None:
    summer = months(trained["data"], 7, 9)
    summary = monitor(trained, summer, "summer")
    assert summary.decision.outcome == "alarm"
    assert DRIFT_DETECTED in summary.decision.events
    assert {"temp", "atemp", "mnth", "season"} <= set(summary.drifted_columns)
    assert summary.drifted_share >= 0.5
    assert summary.prediction_drift is True
    assert summary.validation_success is True
    assert summary.quality is not None and summary.quality.metric == "rmse"
    assert summary.quality.relative_change > 0.25
    assert PERFORMANCE_DEGRADED in summary.decision.events
    assert Path(summary.report_uri).is_file()
    assert len(summary.events) == len(summary.decision.events)


def test_same_data_samples_raise_no_alarm(trained) -> None:
    winter = months(trained["data"], 1, 3)
    alarms = []
    for seed in range(4):
        sample = winter.sample(frac=0.5, random_state=seed)
        summary = monitor(trained, sample, f"winter-{seed}")
        alarms.append(summary.decision.outcome == "alarm")
        assert summary.drifted_share < 0.5
    assert sum(alarms) == 0


def test_monitoring_run_is_logged_and_linked_to_the_model_version(trained) -> None:
    summary = monitor(trained, months(trained["data"], 7, 9).head(800), "summer-head")
    client = MlflowClient()
    run = client.get_run(summary.mlflow_run_id)
    assert run.data.tags["model_name"] == MODEL
    assert run.data.tags["model_version"] == summary.model_version
    assert run.data.metrics["drifted_share"] == pytest.approx(summary.drifted_share)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")}
    assert artifacts == {"monitoring/report.html", "monitoring/summary.json"}
    version = client.get_model_version(MODEL, summary.model_version)
    assert version.tags["monitoring.last_run_id"] == summary.mlflow_run_id
    assert summary.evidently_snapshot_id
    workspace = Path(Settings().artifact_root) / "evidently"
    assert any(workspace.rglob(f"{summary.evidently_snapshot_id}*"))


def test_window_without_labels_gives_drift_only(trained) -> None:
    summer = months(trained["data"], 7, 9).drop(columns=["bikers"])
    summary = monitor(trained, summer, "summer-unlabelled")
    assert summary.quality is None
    assert summary.labeled_rows == 0
    assert summary.decision.outcome == "alarm"
    assert PERFORMANCE_DEGRADED not in summary.decision.events


def test_empty_window_is_nothing_to_monitor(trained) -> None:
    empty = months(trained["data"], 7, 9).head(0)
    summary = monitor(trained, empty, "empty")
    assert summary.decision.outcome == "nothing-to-monitor"
    assert summary.events == []
    assert summary.mlflow_run_id is None


def test_schema_change_is_validation_failure_and_drift(trained) -> None:
    winter = months(trained["data"], 1, 3).sample(frac=0.5, random_state=1)
    changed = winter.drop(columns=["hum"]).assign(temp=lambda f: f["temp"].map(lambda v: f"{v}C"))
    summary = monitor(trained, changed, "schema-change")
    assert summary.decision.outcome == "alarm"
    assert DATA_INVALID in summary.decision.events
    assert summary.validation_success is False
    assert {"hum", "temp"} <= set(summary.drifted_columns)
    assert any("hum" in p for p in summary.schema_problems)


def test_missing_reference_snapshot_names_the_model_version(trained) -> None:
    client = MlflowClient()
    version = client.get_model_version_by_alias(MODEL, "champion").version
    snapshot = client.get_model_version(MODEL, version).tags["data_snapshot"]
    client.set_model_version_tag(MODEL, version, "data_snapshot", snapshot + ".gone")
    try:
        with pytest.raises(ReferenceDataError, match=f"{MODEL} v{version}"):
            monitor(trained, months(trained["data"], 7, 9).head(100), "no-reference")
    finally:
        client.set_model_version_tag(MODEL, version, "data_snapshot", snapshot)


@pytest.fixture
def captured_events(monkeypatch: pytest.MonkeyPatch) -> Iterator[list]:
    """Events the flow emits, recorded by Prefect's AssertingEventsClient instead of sent."""
    from prefect.events.clients import AssertingEventsClient
    from prefect.events.worker import EventsWorker

    AssertingEventsClient.reset()
    worker = EventsWorker.instance(AssertingEventsClient)
    monkeypatch.setattr(EventsWorker, "instance", lambda *_: worker)
    found: list = []
    yield found
    worker.drain()


def test_drift_event_names_the_model_and_carries_the_summary(trained, captured_events) -> None:
    from prefect.events.clients import AssertingEventsClient
    from prefect.events.worker import EventsWorker

    summary = monitor(trained, months(trained["data"], 7, 9), "summer-events")
    EventsWorker.instance().drain()
    events = [
        e
        for client in AssertingEventsClient.all
        for e in client.events
        if e.event.startswith("mlops.")
    ]
    # Winter's model on summer data: the inputs drift and the error grows
    assert [e.event for e in events] == [DRIFT_DETECTED, PERFORMANCE_DEGRADED]
    assert [str(e.id) for e in events] == summary.events
    event = events[0]
    assert event.resource.id == model_resource_id(MODEL) == f"mlops.model.{MODEL}"
    assert event.resource["mlops.model.version"] == summary.model_version
    assert event.resource["mlops.model.alias"] == "champion"
    assert event.payload["model_name"] == MODEL
    assert event.payload["drifted_columns"] == summary.drifted_columns
    assert event.payload["decision"]["outcome"] == "alarm"
    assert event.payload["config_path"] == str(trained["config"])
    assert event.payload["mlflow_run_id"] == summary.mlflow_run_id
    assert f"mlflow.run.{summary.mlflow_run_id}" in {r.id for r in event.related}


def test_no_event_without_a_breach(trained, captured_events) -> None:
    from prefect.events.clients import AssertingEventsClient
    from prefect.events.worker import EventsWorker

    sample = months(trained["data"], 1, 3).sample(frac=0.5, random_state=7)
    summary = monitor(trained, sample, "winter-events")
    EventsWorker.instance().drain()
    emitted = [
        e for c in AssertingEventsClient.all for e in c.events if e.event.startswith("mlops.")
    ]
    assert summary.decision.outcome == "ok"
    assert emitted == []
