"""The monitoring decision and its summary, on typed records (no Evidently run)."""

from __future__ import annotations

import pytest

from prefect_mlops.config import MonitoringConfig
from prefect_mlops.errors import MonitoringError
from prefect_mlops.monitoring import (
    DATA_INVALID,
    DRIFT_DETECTED,
    NO_TRAFFIC,
    PERFORMANCE_DEGRADED,
    PREDICTION,
    ColumnDrift,
    DriftReport,
    MonitoredModel,
    QualityChange,
    WindowRef,
)
from prefect_mlops.monitoring.decision import (
    alarm_name,
    decide,
    judge_empty_window,
    nothing_to_monitor,
    summarize,
)
from prefect_mlops.results import FailedExpectation, ValidationSummary

PASSED = ValidationSummary(success=True, checkpoint="bikeshare.scoring", evaluated=10)
FAILED = PASSED.model_copy(
    update={"success": False, "failed": [FailedExpectation(expectation="x", column="hum")]}
)
MODEL = MonitoredModel(
    name="m", alias="champion", version="3", run_id="r", snapshot_uri="ref.parquet", fingerprint=""
)
WINDOW = WindowRef(uri="w/current.parquet", rows=10, labeled_rows=4, source="prediction log")


def report(
    share: float = 0.0, prediction: bool = False, change: float | None = None
) -> DriftReport:
    quality = None
    if change is not None:
        quality = QualityChange(
            metric="rmse",
            current=1.0 + change,
            baseline=1.0,
            relative_change=change,
            labeled_rows=99,
        )
    return DriftReport(
        columns=[ColumnDrift(column="temp", drifted=share > 0, score=0.5)],
        drifted_share=share,
        prediction=ColumnDrift(column=PREDICTION, drifted=prediction, score=0.2, threshold=0.1),
        quality=quality,
        html_uri="w/report.html",
        reference_rows=10,
        current_rows=10,
    )


def test_decision_is_ok_within_every_threshold() -> None:
    decision = decide(report(share=0.2, change=0.1), PASSED, MonitoringConfig())
    assert decision.outcome == "ok"
    assert decision.events == []
    assert decision.reason == "all monitoring thresholds hold"


def test_decision_lists_every_breach_with_its_event() -> None:
    decision = decide(report(share=0.6, prediction=True, change=0.5), FAILED, MonitoringConfig())
    assert decision.outcome == "alarm"
    assert [b.kind for b in decision.breaches] == [
        "feature-drift",
        "prediction-drift",
        "performance",
        "validation",
    ]
    assert decision.events == [DRIFT_DETECTED, PERFORMANCE_DEGRADED, DATA_INVALID]
    assert decision.reason.startswith("60% of features drifted (threshold 50%): temp")


def test_prediction_drift_alarm_can_be_switched_off() -> None:
    cfg = MonitoringConfig(prediction_drift=False)
    assert decide(report(prediction=True), PASSED, cfg).outcome == "ok"


def test_quality_without_a_baseline_raises_no_alarm() -> None:
    quality = QualityChange(
        metric="rmse", current=9.0, baseline=None, relative_change=None, labeled_rows=99
    )
    unknown = report().model_copy(update={"quality": quality})
    assert decide(unknown, PASSED, MonitoringConfig()).outcome == "ok"


def test_allowed_validation_failures_raise_no_alarm() -> None:
    cfg = MonitoringConfig(max_validation_failures=1)
    assert decide(report(), FAILED, cfg).outcome == "ok"


def test_empty_window_is_nothing_to_monitor() -> None:
    decision = nothing_to_monitor(WINDOW)
    assert decision.outcome == "nothing-to-monitor"
    assert decision.events == []
    assert "prediction log" in decision.reason


QUIET = WindowRef(
    uri="w/current.parquet",
    rows=0,
    labeled_rows=0,
    source="prediction log: last 1 hours",
    location="/shared/prediction_log",
    last_logged="2026-12-01T15:00:00+00:00",
)


def test_empty_window_of_a_logged_model_is_a_no_traffic_alarm_by_default() -> None:
    decision = judge_empty_window(QUIET, "m", MonitoringConfig())
    assert decision.outcome == "alarm" and decision.events == [NO_TRAFFIC]
    assert decision.reason == (
        "no traffic: no rows of m in the window (prediction log: last 1 hours) of the "
        "prediction log /shared/prediction_log; its latest prediction there was logged at "
        "2026-12-01T15:00:00+00:00"
    )
    assert alarm_name(decision) == "No traffic"


def test_empty_window_policy_skip_or_fail() -> None:
    skipped = judge_empty_window(QUIET, "m", MonitoringConfig(empty_window="skip"))
    assert skipped == nothing_to_monitor(QUIET) and skipped.events == []
    with pytest.raises(MonitoringError, match=r"no rows of m .*/shared/prediction_log.*: fail\)"):
        judge_empty_window(QUIET, "m", MonitoringConfig(empty_window="fail"))


def test_summary_holds_the_report_and_validation_whole() -> None:
    drift = report(share=0.6, prediction=True, change=0.5)
    decision = decide(drift, FAILED, MonitoringConfig())
    summary = summarize(MODEL, WINDOW, "configs/x.yaml", decision, drift, FAILED)
    assert summary.drift == drift
    assert summary.validation == FAILED
    assert (summary.model_name, summary.model_version, summary.alias) == ("m", "3", "champion")
    assert (summary.current_rows, summary.labeled_rows) == (10, 4)
    assert summary.reference_snapshot == "ref.parquet"
    assert summary.alarm


def test_summary_headline_figures_derive_from_the_report() -> None:
    drift = report(share=0.6, prediction=True)
    summary = summarize(MODEL, WINDOW, "c.yaml", decide(drift, PASSED, MonitoringConfig()), drift)
    assert summary.drifted_share == 0.6
    assert summary.drifted_columns == ["temp"]
    assert summary.prediction_drift is True
    assert summary.report_uri == "w/report.html"
    dumped = summary.model_dump(mode="json")
    assert dumped["drifted_columns"] == ["temp"]
    assert dumped["drift"]["columns"][0]["column"] == "temp"


def test_summary_of_an_empty_window_has_no_report() -> None:
    summary = summarize(MODEL, WINDOW, "c.yaml", nothing_to_monitor(WINDOW))
    assert summary.drift is None and summary.validation is None
    assert summary.drifted_share == 0.0
    assert summary.drifted_columns == []
    assert summary.prediction_drift is None
    assert summary.report_uri is None
    assert not summary.alarm
