"""Monitoring tasks as plain functions: each hands its inputs to the core and returns its record."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefect_mlops.config import PipelineConfig, parse_config
from prefect_mlops.monitoring import DRIFT_DETECTED, PREDICTION, WindowSpec
from prefect_mlops.settings import Settings
from tasks.monitor import (
    decide_monitoring,
    judge_empty_window,
    load_current_window,
    summarize_monitoring,
)
from tests.conftest import fast_config_dict
from tests.prefect_mlops.monitoring.test_decision import MODEL, PASSED, WINDOW, report


def test_current_window_is_frozen_in_a_new_monitoring_folder(tmp_path: Path) -> None:
    config = parse_config(fast_config_dict())
    path = tmp_path / "july.parquet"
    pd.DataFrame({"temp": [0.1, 0.2], "bikers": [3.0, None], PREDICTION: [1.0, 2.0]}).to_parquet(
        path
    )
    settings = Settings(artifact_root=tmp_path / "artifacts")
    spec = WindowSpec(dataset_path=str(path))
    window = load_current_window.fn(spec, config, MODEL, settings)
    assert Path(window.uri).parent.parent == settings.monitoring_dir / MODEL.name
    assert (window.rows, window.labeled_rows, window.has_logged_predictions) == (2, 1, True)


def test_decision_uses_the_pipelines_thresholds() -> None:
    config: PipelineConfig = parse_config(
        fast_config_dict(monitoring={"drift_share": 0.9, "prediction_drift": False})
    )
    drift = report(share=0.6, prediction=True)
    assert decide_monitoring.fn(drift, PASSED, config).outcome == "ok"
    strict = parse_config(fast_config_dict())
    assert decide_monitoring.fn(drift, PASSED, strict).events == [DRIFT_DETECTED]


def test_summary_nests_the_report_and_validation() -> None:
    drift = report(share=0.6)
    decision = decide_monitoring.fn(drift, PASSED, parse_config(fast_config_dict()))
    summary = summarize_monitoring.fn(MODEL, WINDOW, "c.yaml", decision, drift, PASSED)
    assert summary.drift == drift and summary.validation == PASSED
    skip = parse_config(fast_config_dict(monitoring={"empty_window": "skip"}))
    nothing = judge_empty_window.fn(WINDOW, MODEL, skip)
    empty = summarize_monitoring.fn(MODEL, WINDOW, "c.yaml", nothing)
    assert empty.decision.outcome == "nothing-to-monitor" and empty.drift is None
