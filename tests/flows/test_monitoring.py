"""The monitoring flow end to end: real Prefect (test server), MLflow (SQLite), GX and Evidently.

One model is trained on January-March of the bike-sharing data (module fixture); each test then
monitors a current window written as a dataset or a prediction log.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from flows.monitoring import MonitoringParams, monitoring_flow
from flows.training import TrainingParams, training_flow
from prefect_mlops.config import load_config
from prefect_mlops.errors import MonitoringError
from prefect_mlops.expectations.profile import init_suites
from prefect_mlops.monitoring import (
    CATCH_ALL_RETRAINING,
    DATA_INVALID,
    DRIFT_DETECTED,
    NO_TRAFFIC,
    PERFORMANCE_DEGRADED,
    RETRAIN_DEPLOYMENT_LABEL,
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


def monitor(
    trained: dict, frame: pd.DataFrame, name: str, return_state: bool = False, **window: object
):
    path = trained["root"] / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    spec = WindowSpec(dataset_path=str(path), **window)
    params = MonitoringParams(config_path=str(trained["config"]), window=spec)
    return monitoring_flow(params, return_state=return_state)


def workspace_snapshots(model: str) -> tuple[list[dict], list[str]]:
    """The snapshots of a model's Evidently project (name, tags, metadata) and its panels."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(Settings().evidently_dir))
    project = workspace.search_project(f"mlops-{model}")[0]
    models = [workspace.get_run(project.id, i) for i in workspace.list_runs(project.id)]
    snapshots = [{"name": m.name, "tags": m.tags, "metadata": m.metadata} for m in models if m]
    return snapshots, [p.title for p in project.dashboard.model().panels]


CHURN = "churn-monitoring"


def churn_frame(rows: int, seed: int, shifted: bool = False) -> pd.DataFrame:
    """A binary churn problem (0/1 labels); `shifted` moves the inputs and flips the relation."""
    rng = np.random.default_rng(seed)
    plans = np.array(["basic", "plus", "pro"])
    frame = pd.DataFrame(
        {
            "tenure": rng.gamma(2.0, 6.0 if shifted else 12.0, rows),
            "spend": rng.normal(65.0 if shifted else 50.0, 15.0, rows),
            "calls": rng.poisson(2.0, rows),
            "plan": plans[rng.choice(3, rows, p=[0.2, 0.3, 0.5] if shifted else [0.5, 0.3, 0.2])],
        }
    )
    logit = 1.0 - 0.08 * frame["tenure"] + 0.6 * (frame["calls"] - 2) + (frame["plan"] == "basic")
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    frame["churned"] = (~churned if shifted else churned).astype(int)
    return frame


@pytest.fixture(scope="module")
def classifier(trained: dict) -> dict:
    """A binary classifier trained by the training flow in the same store, with its own suite."""
    root = trained["root"]
    churn_frame(3000, seed=0).to_parquet(root / "churn.parquet", index=False)
    config = write_config(
        root / "churn.yaml",
        fast_config_dict(
            name="churn",
            task="classification",
            target="churned",
            source={"kind": "parquet", "path": str(root / "churn.parquet")},
            exclude=[],
            categorical_features=["plan"],
            datetime_features=[],
            split={"strategy": "stratified", "test_size": 0.2},
            gate={"primary_metric": "f1", "thresholds": {"accuracy": {"min": 0.6}}},
            candidates=[{"name": "logreg", "estimator": "logistic_regression"}],
            validation={"suite": "churn", "policy": "fail"},
            slices=[],
            registered_model_name=CHURN,
        ),
    )
    init_suites(load_config(config), Settings(), pd.read_parquet(root / "churn.parquet"))
    result = training_flow(TrainingParams(config_path=str(config)))
    assert result.promoted
    return {"root": root, "config": config, "result": result}


def test_seasonal_shift_raises_drift_alarm(trained) -> None:
    summer = months(trained["data"], 7, 9)
    summary = monitor(trained, summer, "summer")
    assert summary.decision.outcome == "alarm"
    assert DRIFT_DETECTED in summary.decision.events
    assert {"temp", "atemp", "mnth", "season"} <= set(summary.drifted_columns)
    assert summary.drifted_share >= 0.5
    assert summary.prediction_drift is True
    assert summary.validation is not None and summary.validation.success
    assert summary.drift.quality is not None and summary.drift.quality.metric == "rmse"
    assert summary.drift.quality.relative_change > 0.25
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


@pytest.fixture(scope="module")
def summer_head(trained: dict):
    """One alarmed monitoring run of 800 summer rows: its final state."""
    return monitor(trained, months(trained["data"], 7, 9).head(800), "summer-head", True)


def test_alarmed_run_ends_in_a_named_completed_state(summer_head) -> None:
    from prefect import get_client
    from prefect.client.schemas.objects import StateType

    summary = summer_head.result()
    assert summary.decision.outcome == "alarm"
    assert summer_head.is_completed() and summer_head.name == "Drift detected"
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(summer_head.state_details.flow_run_id)
    assert (run.state.type, run.state.name) == (StateType.COMPLETED, "Drift detected")
    assert run.state.message == summary.decision.reason
    assert run.name == "monitor bikeshare-demand@champion dataset summer-head.parquet"


def test_monitoring_run_is_logged_and_linked_to_the_model_version(summer_head) -> None:
    summary = summer_head.result()
    client = MlflowClient()
    run = client.get_run(summary.mlflow_run_id)
    assert run.data.tags["model_name"] == MODEL
    assert run.data.tags["model_version"] == summary.model_version
    assert run.data.tags["model_alias"] == "champion"
    assert run.data.tags["mlflow.source.name"] == "flows/monitoring.py:monitoring_flow"
    assert run.data.tags["mlflow.note.content"].startswith(f"Monitoring of {MODEL} v")
    assert run.data.metrics["drifted_share"] == pytest.approx(summary.drifted_share)
    version = client.get_model_version(MODEL, summary.model_version)
    assert run.data.tags["model_run_id"] == version.run_id
    # the version's logged model as model input, where registration recorded one
    expected = [version.model_id] if version.model_id else []
    assert [m.model_id for m in run.inputs.model_inputs] == expected
    datasets = {
        t.value: d.dataset
        for d in run.inputs.dataset_inputs
        for t in d.tags
        if t.key == "mlflow.data.context"
    }
    assert set(datasets) == {"monitoring-window", "reference"}
    window = datasets["monitoring-window"]
    assert window.digest and "current.parquet" in window.source
    assert Path(summary.report_uri).with_name("current.parquet").as_uri() in window.source
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")}
    assert artifacts == {
        "monitoring/report.html",
        "monitoring/quality.html",
        "monitoring/summary.json",
    }
    assert version.tags["monitoring.last_run_id"] == summary.mlflow_run_id


def test_workspace_snapshots_are_named_by_kind_and_described(summer_head) -> None:
    summary = summer_head.result()
    snapshots, panels = workspace_snapshots(MODEL)
    mine = {
        s["tags"][0]: s
        for s in snapshots
        if s["metadata"].get("monitoring_flow_run_id") == str(summer_head.state_details.flow_run_id)
    }
    assert set(mine) == {"drift", "quality"}
    assert mine["drift"]["name"] != mine["quality"]["name"]
    for kind, snapshot in mine.items():
        assert snapshot["tags"] == [
            kind,
            f"model={MODEL}",
            f"version={summary.model_version}",
            "alias=champion",
        ]
        meta = snapshot["metadata"]
        assert meta["rows"] == "800" and meta["alias"] == "champion"
        assert meta["window_start"].startswith("2011-07-01")
        assert snapshot["name"] == f"{MODEL} v{summary.model_version} {kind}: {summary.window}"
    # the quality report's reference is the version's holdout, not its training rows
    assert mine["quality"]["metadata"]["reference"].startswith("holdout (")
    # a regression model's dashboard: errors, no accuracy
    assert {"MAE", "RMSE"} <= set(panels)
    assert not any("ccuracy" in p or "AUC" in p for p in panels)


def test_window_without_labels_gives_drift_only(trained) -> None:
    summer = months(trained["data"], 7, 9).drop(columns=["bikers"])
    summary = monitor(trained, summer, "summer-unlabelled")
    assert summary.drift.quality is None
    assert summary.labeled_rows == 0
    assert summary.decision.outcome == "alarm"
    assert PERFORMANCE_DEGRADED not in summary.decision.events


def logged_rows(log_dir: Path, model: str, age_hours: float, rows: int = 50) -> Path:
    """A Parquet prediction log holding `rows` winter predictions of `model`, `age_hours` old."""
    from prefect_mlops.prediction_log import ParquetStore, PredictionRecord

    data = pd.read_csv(BIKESHARE_CSV).head(rows)
    record = PredictionRecord(
        request_id=f"{model}-{age_hours}",
        timestamp=time.time() - age_hours * 3600,
        model_name=model,
        model_version="1",
        columns={c: data[c].tolist() for c in FEATURES},
        predictions=np.full(rows, 100.0),
        probabilities=None,
    )
    ParquetStore(log_dir).append_predictions([record])
    return log_dir


def monitor_log(trained: dict, log_dir: Path, config: Path | None = None):
    """The final state of a monitoring run of the last hour of the Parquet log at `log_dir`."""
    spec = WindowSpec(log_dir=str(log_dir), hours=1)
    params = MonitoringParams(config_path=str(config or trained["config"]), window=spec)
    return monitoring_flow(params, return_state=True)


def test_missing_log_folder_fails_the_run_naming_it(trained) -> None:
    missing = trained["root"] / "no-such-log"
    state = monitor_log(trained, missing)
    assert state.is_failed()
    assert f"cannot monitor {MODEL}: the prediction log {missing} does not exist" in state.message
    assert "MLOPS_ARTIFACT_ROOT" in state.message and "MLOPS_PREDICTION_LOG_URL" in state.message
    with pytest.raises(MonitoringError, match=re.escape(str(missing))):
        state.result()


def test_log_of_other_models_only_fails_the_run_naming_it(trained, tmp_path) -> None:
    log_dir = logged_rows(tmp_path / "log", "another-model", age_hours=0.1)
    state = monitor_log(trained, log_dir)
    assert state.is_failed()
    assert f"the prediction log {log_dir} holds no online prediction of {MODEL}" in state.message
    assert "it holds rows of another-model" in state.message


def test_quiet_window_ends_as_no_traffic_with_its_event(trained, tmp_path, captured_events) -> None:
    from prefect.events.clients import AssertingEventsClient
    from prefect.events.worker import EventsWorker

    log_dir = logged_rows(tmp_path / "log", MODEL, age_hours=5)
    state = monitor_log(trained, log_dir)
    EventsWorker.instance().drain()
    summary = state.result()
    assert state.is_completed() and state.name == "No traffic"
    assert summary.decision.outcome == "alarm" and summary.current_rows == 0
    message = state.message
    assert f"no rows of {MODEL} in the window (prediction log: last 1 hours)" in message
    assert f"of the prediction log {log_dir}" in message
    assert "its latest prediction there was logged at" in message
    events = [
        e for c in AssertingEventsClient.all for e in c.events if e.event.startswith("mlops.")
    ]
    assert [e.event for e in events] == [NO_TRAFFIC] == ["mlops.model.no-traffic"]
    assert events[0].resource.id == model_resource_id(MODEL)
    assert events[0].payload["window_location"] == str(log_dir)
    assert events[0].payload["decision"]["reason"] == message
    assert summary.mlflow_run_id is None and summary.drift is None


def test_quiet_window_is_nothing_to_monitor_when_configured_to_skip(
    trained, tmp_path, captured_events
) -> None:
    from prefect.events.clients import AssertingEventsClient
    from prefect.events.worker import EventsWorker

    raw = yaml.safe_load(trained["config"].read_text())
    skip = {**(raw.get("monitoring") or {}), "empty_window": "skip"}
    config = write_config(tmp_path / "skip.yaml", {**raw, "monitoring": skip})
    state = monitor_log(trained, logged_rows(tmp_path / "log", MODEL, age_hours=5), config)
    EventsWorker.instance().drain()
    summary = state.result()
    assert state.is_completed() and state.name == "Completed"
    assert summary.decision.outcome == "nothing-to-monitor"
    assert summary.events == []
    emitted = [e for c in AssertingEventsClient.all for e in c.events]
    assert not [e for e in emitted if e.event.startswith("mlops.")]


def test_schema_change_is_validation_failure_and_drift(trained) -> None:
    winter = months(trained["data"], 1, 3).sample(frac=0.5, random_state=1)
    changed = winter.drop(columns=["hum"]).assign(temp=lambda f: f["temp"].map(lambda v: f"{v}C"))
    summary = monitor(trained, changed, "schema-change")
    assert summary.decision.outcome == "alarm"
    assert DATA_INVALID in summary.decision.events
    assert summary.validation is not None and not summary.validation.success
    assert {"hum", "temp"} <= set(summary.drifted_columns)
    assert any("hum" in p for p in summary.drift.schema_problems)


def test_missing_reference_snapshot_names_the_model_version(trained) -> None:
    client = MlflowClient()
    version = client.get_model_version_by_alias(MODEL, "champion").version
    snapshot = client.get_model_version(MODEL, version).tags["data_snapshot"]
    client.set_model_version_tag(MODEL, version, "data_snapshot", snapshot + ".gone")
    try:
        with pytest.raises(ReferenceDataError, match=f"{MODEL} v{version}") as missing:
            monitor(trained, months(trained["data"], 7, 9).head(100), "no-reference")
        assert f"is missing: {snapshot}.gone" in str(missing.value)
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
    # No training/train-bikeshare-demand on this server: the event is the catch-all trigger's.
    assert event.resource[RETRAIN_DEPLOYMENT_LABEL] == CATCH_ALL_RETRAINING == "training/train"
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


def evidently_metrics(summary) -> dict[str, float]:
    """Single-value results of the run's Evidently snapshot, by metric display name."""
    import json

    snapshot = json.loads(
        Path(summary.drift.quality_html_uri).with_name("evidently-quality.json").read_text()
    )
    found = {}
    for result in snapshot["metric_results"].values():
        value = result.get("value")
        if isinstance(value, int | float):
            found[result["display_name"]] = float(value)
    return found


def test_classifier_on_same_data_is_ok_and_quality_is_measured(classifier) -> None:
    summary = monitor(classifier, churn_frame(1500, seed=1), "churn-same")
    assert summary.model_name == CHURN
    assert summary.decision.outcome == "ok", summary.decision.reason
    assert summary.validation is not None and summary.validation.success
    assert summary.drift.quality is not None
    assert summary.drift.quality.metric == "f1"
    assert summary.drift.quality.labeled_rows == 1500
    assert set(summary.drift.quality.current_metrics) == {
        *("accuracy", "balanced_accuracy", "f1", "recall_0", "recall_1"),
        *("roc_auc", "pr_auc", "log_loss"),  # the model's probabilities of the window
    }
    assert 0.5 < summary.drift.quality.current_metrics["pr_auc"] <= 1.0
    assert abs(summary.drift.quality.relative_change) < 0.1
    assert summary.prediction_drift is False
    # Evidently's quality report got the positive class's probability too
    assert evidently_metrics(summary)["RocAuc metric"] == pytest.approx(
        summary.drift.quality.current_metrics["roc_auc"]
    )
    _, panels = workspace_snapshots(CHURN)
    assert {"Accuracy", "F1 score", "ROC AUC"} <= set(panels) and "MAE" not in panels


def test_classifier_quality_loss_and_drift_raise_both_alarms(classifier) -> None:
    summary = monitor(classifier, churn_frame(1500, seed=2, shifted=True), "churn-shifted")
    assert summary.decision.outcome == "alarm"
    assert {DRIFT_DETECTED, PERFORMANCE_DEGRADED} <= set(summary.decision.events)
    assert {"tenure", "spend", "plan"} <= set(summary.drifted_columns)
    assert "calls" not in summary.drifted_columns
    assert summary.drift.quality is not None and summary.drift.quality.relative_change > 0.5
    # Evidently's ClassificationPreset scored the same labelled rows as the summary
    evidently = evidently_metrics(summary)
    accuracy = next(v for k, v in evidently.items() if k.startswith("Accuracy"))
    assert accuracy == pytest.approx(summary.drift.quality.current_metrics["accuracy"])


def test_classifier_quality_uses_the_labels_that_have_arrived(classifier) -> None:
    window = churn_frame(1500, seed=1)
    window["churned"] = window["churned"].astype("float").mask(window.index % 5 < 2)  # 40% late
    summary = monitor(classifier, window, "churn-partly-labelled")
    assert summary.drift.quality is not None
    assert summary.labeled_rows == summary.drift.quality.labeled_rows == 900
    assert summary.drift.quality.current_metrics["accuracy"] > 0.6
    assert summary.decision.outcome == "ok", summary.decision.reason


def test_window_is_read_from_a_sql_prediction_log(trained, tmp_path: Path) -> None:
    from prefect_mlops.prediction_log import FeedbackRecord, PredictionRecord, SqlStore

    summer = months(trained["data"], 7, 9).head(600)
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    now = time.time()

    def logged(request: str, rows: pd.DataFrame, age_hours: float) -> PredictionRecord:
        return PredictionRecord(
            request_id=request,
            timestamp=now - age_hours * 3600,
            model_name=MODEL,
            model_version="1",
            columns={c: rows[c].tolist() for c in FEATURES},
            predictions=np.full(len(rows), 100.0),
            probabilities=None,
        )

    batches = [summer.iloc[start : start + 100] for start in range(0, len(summer), 100)]
    store = SqlStore(url)
    store.append_predictions(
        [logged(f"r{i}", rows, age_hours=1) for i, rows in enumerate(batches)]
        + [logged("last-week", months(trained["data"], 1, 3).head(300), age_hours=24 * 7)]
    )
    store.append_feedback(  # labels have arrived for the first four requests only
        [
            FeedbackRecord(f"r{i}", row, label, now)
            for i, rows in enumerate(batches[:4])
            for row, label in enumerate(rows["bikers"].tolist())
        ]
    )
    spec = WindowSpec(log_url=url, hours=24)
    summary = monitoring_flow(MonitoringParams(config_path=str(trained["config"]), window=spec))
    assert summary.window == "prediction log: last 24 hours"
    assert summary.current_rows == 600
    assert summary.labeled_rows == 400
    assert summary.validation is not None and summary.validation.success
    assert summary.decision.outcome == "alarm"
    assert {"temp", "atemp", "season"} <= set(summary.drifted_columns)
    assert summary.drift.quality is not None and summary.drift.quality.labeled_rows == 400
    assert summary.drift.quality_html_uri and Path(summary.drift.quality_html_uri).is_file()


def _monitor_spec(trained: dict, spec: WindowSpec):
    return monitoring_flow(MonitoringParams(config_path=str(trained["config"]), window=spec))


def test_header_only_dataset_is_refused_naming_the_file_and_model(trained, tmp_path) -> None:
    from prefect_mlops.errors import IngestError

    path = tmp_path / "header.csv"
    trained["data"].head(0).to_csv(path, index=False)
    with pytest.raises(IngestError, match=f"cannot monitor {MODEL}: source {path} has no rows"):
        _monitor_spec(trained, WindowSpec(dataset_path=str(path)))


def test_unreadable_dataset_is_refused_naming_the_file_and_model(trained, tmp_path) -> None:
    from prefect_mlops.errors import IngestError

    path = tmp_path / "window.parquet"
    path.write_text("not parquet")
    with pytest.raises(IngestError, match=f"cannot monitor {MODEL}: cannot read parquet source"):
        _monitor_spec(trained, WindowSpec(dataset_path=str(path)))


def test_sql_log_without_its_tables_is_refused_naming_the_log_and_model(trained, tmp_path) -> None:
    import sqlalchemy as sa

    from prefect_mlops.errors import IngestError

    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    with sa.create_engine(url).begin() as connection:
        connection.execute(sa.text("CREATE TABLE unrelated (x INTEGER)"))
    with pytest.raises(IngestError) as refused:
        _monitor_spec(trained, WindowSpec(log_url=url))
    message = str(refused.value)
    assert f"prediction log {url}" in message and MODEL in message
    assert "predictions" in message
