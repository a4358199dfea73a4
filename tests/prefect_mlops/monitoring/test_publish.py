"""Publishing: the Markdown summary, the event's resource and payload, the MLflow figures."""

from __future__ import annotations

from pathlib import Path

from prefect_mlops.config import MonitoringConfig
from prefect_mlops.monitoring import DriftSummary, QualityChange
from prefect_mlops.monitoring.decision import decide, nothing_to_monitor, summarize
from prefect_mlops.monitoring.publish import (
    event_payload,
    event_related,
    event_resource,
    markdown_summary,
    project_name,
    run_metrics,
    run_tags,
)
from prefect_mlops.settings import Settings
from tests.prefect_mlops.monitoring.test_decision import FAILED, MODEL, WINDOW, report


def alarm() -> DriftSummary:
    drift = report(share=0.6, prediction=True, change=0.5)
    decision = decide(drift, FAILED, MonitoringConfig())
    return summarize(MODEL, WINDOW, "configs/x.yaml", decision, drift, FAILED)


def test_payload_keeps_what_automations_read_at_the_top_level() -> None:
    payload = event_payload(alarm().model_copy(update={"events": ["e1"], "mlflow_run_id": "r1"}))
    # prefect.yaml's retrain-on-drift trigger and deployments/setup.py's notification templates
    assert payload["config_path"] == "configs/x.yaml"
    for key in ("model_name", "model_version", "alias", "window", "mlflow_run_id", "report_uri"):
        assert payload[key] is not None
    assert payload["decision"]["reason"].startswith("60% of features drifted")
    assert payload["drifted_columns"] == ["temp"]
    assert payload["drift"]["quality"]["metric"] == "rmse"
    assert payload["validation"]["failed"][0]["column"] == "hum"
    assert "events" not in payload
    assert DriftSummary.model_validate(payload).drift == alarm().drift


def test_event_resource_is_the_registered_model() -> None:
    summary = alarm()
    assert event_resource(summary) == {
        "prefect.resource.id": "mlops.model.m",
        "prefect.resource.name": "m",
        "prefect.resource.role": "model",
        "mlops.model.version": "3",
        "mlops.model.alias": "champion",
    }
    assert event_related(summary) == []
    linked = summary.model_copy(update={"mlflow_run_id": "r1"})
    assert event_related(linked)[0]["prefect.resource.id"] == "mlflow.run.r1"


def test_markdown_names_decision_drift_quality_and_failures(tmp_path: Path) -> None:
    text = markdown_summary(alarm(), Settings(artifact_root=tmp_path, reports_url=None))
    assert text.startswith("## Monitoring: alarm")
    assert "| drifted features | 60% ['temp'] |" in text
    assert "| prediction drift | True (score 0.2) |" in text
    assert "| quality | rmse 1.5 vs holdout 1 |" in text
    assert "| validation | x on hum: " in text
    # No report server: a path as text (browsers refuse file:// links from the Prefect UI).
    assert "| report | drift report: `w/report.html` |" in text
    assert "| quality report | - |" in text


def test_markdown_links_each_report_by_its_report_server_url(tmp_path: Path) -> None:
    settings = Settings(artifact_root=tmp_path, reports_url="http://127.0.0.1:8090/")
    folder = settings.monitoring_dir / "m" / "w 1"
    drift = report(share=0.6).model_copy(
        update={
            "html_uri": str(folder / "report.html"),
            "quality_html_uri": str(folder / "quality.html"),
        }
    )
    summary = summarize(MODEL, WINDOW, "c.yaml", decide(drift, FAILED, MonitoringConfig()), drift)
    text = markdown_summary(summary, settings)
    base = "http://127.0.0.1:8090/monitoring/m/w%201"
    assert f"| report | [drift report]({base}/report.html) |" in text
    assert f"| quality report | [quality report]({base}/quality.html) |" in text
    # A report outside the served folders has no URL: its path, never a file:// link.
    moved = drift.model_copy(update={"html_uri": "/x.html"})
    elsewhere = summary.model_copy(update={"drift": moved})
    assert "| report | drift report: `/x.html` |" in markdown_summary(elsewhere, settings)
    # The MLflow run: a link with an MLflow server, its id alone with a local store.
    ran = summary.model_copy(update={"mlflow_run_id": "abc123"})
    served = settings.model_copy(update={"tracking_uri": "http://127.0.0.1:5000"})
    assert "| MLflow run | [abc123](http://127.0.0.1:5000/#/runs/abc123) |" in markdown_summary(
        ran, served
    )
    local = settings.model_copy(update={"tracking_uri": "sqlite:///m.db"})
    assert "| MLflow run | `abc123` |" in markdown_summary(ran, local)


def test_markdown_of_an_empty_window(tmp_path: Path) -> None:
    summary = summarize(MODEL, WINDOW, "c.yaml", nothing_to_monitor(WINDOW))
    text = markdown_summary(summary, Settings(artifact_root=tmp_path, reports_url=None))
    assert "## Monitoring: nothing-to-monitor" in text
    assert "| quality | no labels (drift only) |" in text
    assert "| report | - |" in text


def test_run_figures_cover_drift_scores_quality_and_validation() -> None:
    summary = alarm()
    metrics = run_metrics(summary)
    assert metrics["drifted_share"] == 0.6
    assert metrics["drift_temp"] == 0.5
    assert metrics["prediction_drift_score"] == 0.2
    assert metrics["quality_relative_change"] == 0.5
    assert metrics["validation_failures"] == 1.0
    assert run_tags(summary, None)["prefect.flow_run_id"] == "none"
    assert run_tags(summary, "f1")["decision"] == "alarm"


def test_quality_metrics_are_logged_as_current_values() -> None:
    quality = QualityChange(
        metric="f1", current=0.8, baseline=0.9, labeled_rows=60, current_metrics={"f1": 0.8}
    )
    drift = report().model_copy(update={"quality": quality})
    summary = summarize(MODEL, WINDOW, "c.yaml", decide(drift, FAILED, MonitoringConfig()), drift)
    assert run_metrics(summary)["current_f1"] == 0.8
    assert project_name("m") == "mlops-m"


def test_an_alarm_names_its_final_state_by_its_first_breach() -> None:
    from prefect_mlops.monitoring.decision import alarm_name

    assert alarm_name(alarm().decision) == "Drift detected"
    quality_only = decide(report(change=0.5), FAILED, MonitoringConfig(max_validation_failures=5))
    assert alarm_name(quality_only) == "Performance degraded"
    assert alarm_name(decide(report(), FAILED, MonitoringConfig())) == "Data invalid"
    assert alarm_name(nothing_to_monitor(WINDOW)) is None


def test_numbers_read_as_figures_and_links_need_an_mlflow_server() -> None:
    from prefect_mlops.monitoring.publish import mlflow_artifact_link, mlflow_run_link, number

    assert number(57.110111780618396) == "57.11"
    assert number(None) == "-"
    assert mlflow_run_link("sqlite:///mlflow.db", "1", "r") is None
    assert mlflow_run_link("http://127.0.0.1:5000/", "1", "r") == (
        "http://127.0.0.1:5000/#/experiments/1/runs/r"
    )
    assert mlflow_artifact_link("http://h:5000", "1", "r", "report.html") == (
        "http://h:5000/#/experiments/1/runs/r/artifacts/monitoring/report.html"
    )
