"""Unit tests of the monitoring helpers on small frames (real Evidently, no flow)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from prefect_mlops.config import MonitoringConfig, PipelineConfig, parse_config
from prefect_mlops.monitoring import (
    DATA_INVALID,
    DRIFT_DETECTED,
    PERFORMANCE_DEGRADED,
    ColumnDrift,
    DriftReport,
    QualityChange,
    WindowSpec,
)
from prefect_mlops.results import FailedExpectation, ValidationSummary
from prefect_mlops.settings import Settings
from tasks.monitor import (
    PREDICTION,
    compute_drift,
    decide,
    labelled_rows,
    log_frame,
    quality_change,
    sample_rows,
    schema_problems,
)
from tests.conftest import fast_config_dict

PASSED = ValidationSummary(success=True, checkpoint="bikeshare.scoring", evaluated=10)


@pytest.fixture
def config() -> PipelineConfig:
    return parse_config(fast_config_dict())


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
        html_uri="report.html",
        reference_rows=10,
        current_rows=10,
    )


def test_decision_is_ok_within_every_threshold() -> None:
    decision = decide(report(share=0.2, change=0.1), PASSED, MonitoringConfig())
    assert decision.outcome == "ok"
    assert decision.events == []


def test_decision_lists_every_breach_with_its_event() -> None:
    failed = PASSED.model_copy(
        update={"success": False, "failed": [FailedExpectation(expectation="x", column="hum")]}
    )
    decision = decide(report(share=0.6, prediction=True, change=0.5), failed, MonitoringConfig())
    assert decision.outcome == "alarm"
    assert [b.kind for b in decision.breaches] == [
        "feature-drift",
        "prediction-drift",
        "performance",
        "validation",
    ]
    assert decision.events == [DRIFT_DETECTED, PERFORMANCE_DEGRADED, DATA_INVALID]


def test_prediction_drift_alarm_can_be_switched_off() -> None:
    cfg = MonitoringConfig(prediction_drift=False)
    assert decide(report(prediction=True), PASSED, cfg).outcome == "ok"


def test_schema_problems_name_missing_and_retyped_columns() -> None:
    reference = pd.DataFrame({"a": [1.0], "b": ["x"], "c": [2]})
    current = pd.DataFrame({"a": ["1.0"], "c": [3]})
    assert schema_problems(reference, current, ["a", "b", "c"]) == [
        "a: type changed from float64 to object",
        "b: missing from the current data",
    ]


def test_sample_rows_caps_and_is_seeded() -> None:
    frame = pd.DataFrame({"a": range(5000)})
    assert len(sample_rows(frame, None, 0)) == 5000
    assert sample_rows(frame, 1000, 3).equals(sample_rows(frame, 1000, 3))
    assert len(sample_rows(frame, 1000, 3)) == 1000


def test_window_spec_refuses_two_time_bounds() -> None:
    with pytest.raises(ValidationError):
        WindowSpec(hours=1, days=1)
    with pytest.raises(ValidationError):
        WindowSpec(dataset_path="x.csv", days=1)
    assert WindowSpec(rows=10).describe() == "prediction log: last 10 rows"


def test_quality_needs_enough_labels(config: PipelineConfig) -> None:
    current = pd.DataFrame({"bikers": [1.0, np.nan] * 30, PREDICTION: [2.0] * 60})
    assert quality_change(labelled_rows(current, config), config, {"rmse": 0.5}) is None  # 30 < 50
    current = pd.DataFrame({"bikers": [1.0] * 60, PREDICTION: [2.0] * 60})
    quality = quality_change(labelled_rows(current, config), config, {"rmse": 0.5})
    assert quality is not None
    assert quality.current == pytest.approx(1.0)
    assert quality.relative_change == pytest.approx(1.0)


def test_drift_of_small_frames_wraps_evidently_results(
    bikeshare: pd.DataFrame, config: PipelineConfig
) -> None:
    month = pd.to_datetime(bikeshare["timestamp"]).dt.month
    reference = bikeshare.loc[month <= 3].assign(prediction=lambda f: f["bikers"] * 1.0)
    current = bikeshare.loc[month.between(7, 9)].assign(prediction=lambda f: f["bikers"] * 1.0)
    found, _, quality_snapshot = compute_drift(
        reference.head(600), current.head(600), config, [], {"rmse": 1.0}
    )
    by_column = {c.column: c for c in found.columns}
    assert by_column["temp"].drifted and by_column["temp"].method
    assert not by_column["holiday"].drifted
    assert found.prediction is not None and found.prediction.drifted
    assert found.quality is not None and found.quality.current == pytest.approx(0.0)
    assert quality_snapshot is not None


def test_late_class_labels_take_the_type_of_the_predictions() -> None:
    config = parse_config(
        fast_config_dict(
            task="classification",
            split={"strategy": "random", "test_size": 0.2},
            gate={"primary_metric": "f1", "thresholds": {}},
            candidates=[{"name": "logreg", "estimator": "logistic_regression"}],
        )
    )
    current = pd.DataFrame({"bikers": [1.0, np.nan, 0.0], PREDICTION: np.array([1, 1, 0])})
    rows = labelled_rows(current, config)
    assert rows["bikers"].tolist() == [1, 0]
    assert rows["bikers"].dtype == rows[PREDICTION].dtype
    named = pd.DataFrame({"bikers": ["low", None, "high"], PREDICTION: ["low", "low", "mid"]})
    assert labelled_rows(named, config)["bikers"].tolist() == ["low", "high"]


def test_log_window_reads_recent_rows_of_the_model_with_labels(
    tmp_path: Path, settings: Settings, config: PipelineConfig
) -> None:
    from prefect_mlops.prediction_log import FeedbackRecord, ParquetStore, PredictionRecord

    store = ParquetStore(tmp_path / "log")
    now = time.time()

    def record(request: str, age_hours: float, model: str = "bikeshare-demand") -> PredictionRecord:
        return PredictionRecord(
            request_id=request,
            timestamp=now - age_hours * 3600,
            model_name=model,
            model_version="1",
            columns={"temp": [0.1, 0.2], "hr": [1, 2]},
            predictions=np.array([10.0, 20.0]),
            probabilities=None,
        )

    store.append_predictions([record("old", 48), record("new", 1), record("other", 1, "x")])
    store.append_feedback([FeedbackRecord("new", 1, 25.0, now)])
    frame = log_frame(
        WindowSpec(hours=24, log_dir=str(tmp_path / "log")), "bikeshare-demand", config, settings
    )
    assert list(frame["temp"]) == [0.1, 0.2]
    assert frame["bikers"].isna().tolist() == [True, False]
    # the prediction time stands in for the split clock the requests did not carry
    assert set(frame.columns) == {"temp", "hr", PREDICTION, "bikers", "timestamp"}
    assert frame["timestamp"].notna().all()
