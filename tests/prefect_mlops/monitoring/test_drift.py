"""The Evidently adapter on small frames: real Evidently runs, results read into typed records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from prefect_mlops.config import PipelineConfig
from prefect_mlops.monitoring import PREDICTION
from prefect_mlops.monitoring.drift import (
    DRIFT_HTML,
    DRIFT_SNAPSHOT,
    QUALITY_HTML,
    QUALITY_SNAPSHOT,
    compute_drift,
    data_definition,
    sample_rows,
)
from prefect_mlops.monitoring.scoring import reference_schema
from tests.prefect_mlops.monitoring.conftest import small_frame


def test_shifted_column_and_predictions_drift_and_steady_ones_do_not(
    small_config: PipelineConfig,
) -> None:
    reference, current = small_frame(300, seed=0), small_frame(300, seed=1, shift=2.0)
    found = compute_drift(reference, current, small_config, [], {"rmse": 0.1})
    by_column = {c.column: c for c in found.report.columns}
    assert set(by_column) == {"steady", "moving", "kind"}
    assert by_column["moving"].drifted and by_column["moving"].method
    assert by_column["moving"].score is not None
    assert not by_column["steady"].drifted and not by_column["kind"].drifted
    assert found.report.drifted_columns == ["moving"]
    assert found.report.drifted_share == pytest.approx(1 / 3)
    assert found.report.prediction is not None and found.report.prediction.drifted
    assert (found.report.reference_rows, found.report.current_rows) == (300, 300)
    assert not found.report.sampled


def test_same_distribution_does_not_drift(small_config: PipelineConfig) -> None:
    found = compute_drift(small_frame(300, 0), small_frame(300, 1), small_config, [], {})
    assert found.report.drifted_columns == []
    assert found.report.prediction is not None and not found.report.prediction.drifted


def test_labels_give_the_quality_report_and_change(small_config: PipelineConfig) -> None:
    current = small_frame(300, seed=1)
    found = compute_drift(small_frame(300, 0), current, small_config, [], {"rmse": 0.05})
    quality = found.report.quality
    assert quality is not None and quality.metric == "rmse"
    assert quality.labeled_rows == 300
    assert quality.current == pytest.approx(0.1, rel=0.2)
    assert quality.relative_change == pytest.approx(1.0, rel=0.3)  # twice the holdout's error
    assert found.quality_snapshot is not None


def test_without_labels_or_predictions_only_features_are_compared(
    small_config: PipelineConfig,
) -> None:
    reference = small_frame(200, 0)
    current = small_frame(200, 1).drop(columns=["y", PREDICTION])
    found = compute_drift(reference, current, small_config, [], {})
    assert found.report.prediction is None
    assert found.report.quality is None and found.quality_snapshot is None


def test_schema_problems_count_as_drifted_columns(small_config: PipelineConfig) -> None:
    current = small_frame(200, 1).drop(columns=["kind"])
    problem = "kind: missing from the current data"
    found = compute_drift(small_frame(200, 0), current, small_config, [problem], {})
    kind = next(c for c in found.report.columns if c.column == "kind")
    assert kind.drifted and kind.detail == "missing from the current data"
    assert found.report.schema_problems == [problem]
    assert found.report.drifted_share == pytest.approx(1 / 3)


def test_reports_and_snapshots_are_written_to_the_folder(
    small_config: PipelineConfig, tmp_path: Path
) -> None:
    found = compute_drift(
        small_frame(200, 0), small_frame(200, 1), small_config, [], {}, folder=tmp_path
    )
    assert found.report.html_uri == str((tmp_path / DRIFT_HTML).resolve())
    assert found.report.quality_html_uri == str((tmp_path / QUALITY_HTML).resolve())
    for name in (DRIFT_HTML, DRIFT_SNAPSHOT, QUALITY_HTML, QUALITY_SNAPSHOT):
        assert (tmp_path / name).stat().st_size > 0


def test_large_sides_are_sampled_to_the_cap(small_config: PipelineConfig) -> None:
    monitoring = small_config.monitoring.model_copy(update={"max_rows": 1000})
    capped = small_config.model_copy(update={"monitoring": monitoring})
    found = compute_drift(small_frame(1500, 0), small_frame(400, 1), capped, [], {})
    assert found.report.sampled
    assert found.report.reference_rows == 1500


def test_prediction_takes_the_kind_of_the_task(small_config: PipelineConfig) -> None:
    schema = reference_schema(small_frame(10, 0), small_config)
    definition = data_definition(schema, schema.features, small_config, with_prediction=True)
    assert definition.numerical_columns == ["steady", "moving", PREDICTION]
    assert definition.categorical_columns == ["kind"]


def test_sample_rows_caps_and_is_seeded() -> None:
    frame = pd.DataFrame({"a": range(5000)})
    assert len(sample_rows(frame, None, 0)) == 5000
    assert sample_rows(frame, 1000, 3).equals(sample_rows(frame, 1000, 3))
    assert len(sample_rows(frame, 1000, 3)) == 1000


def test_drift_of_bikeshare_seasons_wraps_evidently_results(
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
