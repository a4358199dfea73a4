"""A retraining run names the monitoring run whose event started it, and links its report."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefect_mlops.episode import (
    RetrainingCause,
    cause_markdown,
    cause_of,
    service_markdown,
    service_model_url,
)
from prefect_mlops.monitoring.publish import event_payload
from prefect_mlops.settings import Settings
from tests.prefect_mlops.monitoring.test_publish import alarm

BASE = "http://127.0.0.1:8090"
UI = "http://127.0.0.1:4200/runs/flow-run/f1"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(artifact_root=tmp_path / "artifacts", reports_url=BASE)


def test_the_cause_is_read_from_the_monitoring_events_payload() -> None:
    payload = event_payload(alarm().model_copy(update={"events": ["e1"]}))
    cause = cause_of("mlops.model.drift-detected", "e1", payload, "f1")
    assert (cause.event, cause.event_id, cause.flow_run_id) == (
        "mlops.model.drift-detected",
        "e1",
        "f1",
    )
    assert cause.model_version == "3"
    assert cause.decision is not None and cause.decision.startswith("alarm: 60% of features")
    assert cause.report_uri == alarm().report_uri


def test_the_summary_links_the_monitoring_run_and_its_report(settings: Settings) -> None:
    report = settings.monitoring_dir / "m" / "run-1" / "drift.html"
    cause = RetrainingCause(
        event="mlops.model.drift-detected",
        event_id="e1",
        flow_run_id="f1",
        flow_run_name="monitor m@champion last 24h",
        flow_run_url=UI,
        model_version="3",
        decision="alarm: 60% of features drifted (share 0.6000001234)",
        report_uri=str(report),
    )
    line = cause_markdown(cause, settings)
    assert line.startswith(f"**Started by**: monitoring run [monitor m@champion last 24h]({UI})")
    assert " of v3 (alarm: 60% of features drifted (share 0.6))" in line  # figures readable
    assert f"[drift report]({BASE}/monitoring/m/run-1/drift.html)" in line


def test_without_ui_or_report_server_the_run_and_report_are_named(tmp_path: Path) -> None:
    settings = Settings(artifact_root=tmp_path / "artifacts")
    cause = RetrainingCause(
        event="e", event_id="e1", flow_run_id="f1", report_uri="/data/drift.html"
    )
    line = cause_markdown(cause, settings)
    assert "monitoring run `f1`" in line and "drift report: `/data/drift.html`" in line
    assert "](" not in line


def test_an_event_from_outside_a_run_is_named_as_such(settings: Settings) -> None:
    cause = RetrainingCause(event="mlops.model.drift-detected", event_id="e1")
    assert "event `mlops.model.drift-detected` (e1), emitted outside a flow run" in (
        cause_markdown(cause, settings)
    )


def test_the_services_page_of_a_model_is_its_open_inference_metadata() -> None:
    url = service_model_url("http://127.0.0.1:8080/", "bike demand")
    assert url == "http://127.0.0.1:8080/v2/models/bike%20demand"


def test_a_new_champion_links_the_service_page_of_its_model() -> None:
    line = service_markdown("http://127.0.0.1:8080", "m", "4", promoted=True)
    assert "[m on the prediction service](http://127.0.0.1:8080/v2/models/m)" in line
    assert "v4 once it has loaded it" in line


@pytest.mark.parametrize(("url", "promoted"), [(None, True), ("http://127.0.0.1:8080", False)])
def test_no_service_line_without_its_address_or_a_new_champion(
    url: str | None, promoted: bool
) -> None:
    assert service_markdown(url, "m", "4", promoted) == ""
