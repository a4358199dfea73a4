"""The Evidently adapter on small frames: real Evidently runs, results read into typed records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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
    quality_definition,
    sample_rows,
)
from prefect_mlops.monitoring.scoring import reference_schema
from tests.prefect_mlops.monitoring.conftest import (
    classification_config,
    labelled_frame,
    small_frame,
)


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


@pytest.mark.parametrize(
    ("classes", "positive"),
    [(["No", "Yes"], "Yes"), ([0, 1], 1), ([False, True], True)],
    ids=["text", "integers", "booleans"],
)
def test_binary_labels_of_any_type_give_the_quality_report(
    classes: list[object], positive: object
) -> None:
    config = classification_config()
    reference = labelled_frame(300, seed=0, classes=classes)
    current = labelled_frame(300, seed=1, classes=classes)
    # as read back from /feedback: JSON values, a third not labelled yet
    current["label"] = current["label"].astype(object).where(current.index % 3 != 0, None)
    found = compute_drift(reference, current, config, [], {}, positive_label=positive)
    assert found.report.problems == []
    assert found.quality_snapshot is not None
    quality = found.report.quality
    assert quality is not None and quality.metric == "balanced_accuracy"
    assert quality.labeled_rows == 200
    assert f"recall_{positive}" in quality.current_metrics
    definition = quality_definition(config, positive)
    assert definition.classification is not None
    assert definition.classification[0].pos_label == positive


def test_multiclass_labels_with_missing_values_give_the_quality_report() -> None:
    config = classification_config()
    frames = []
    for seed in (0, 1):
        frame = labelled_frame(300, seed=seed, classes=["low", "high"], share=0.4)
        frame.loc[frame["x"] < -0.5, ["label", PREDICTION]] = "mid"
        frame.loc[::7, "x"] = np.nan
        frame.loc[::11, "kind"] = None
        frames.append(frame)
    frames[1].loc[::5, "label"] = None  # labels that have not arrived
    found = compute_drift(frames[0], frames[1], config, [], {})
    assert found.report.problems == [] and found.quality_snapshot is not None
    quality = found.report.quality
    assert quality is not None and quality.labeled_rows == 240
    assert {"recall_low", "recall_mid", "recall_high"} <= set(quality.current_metrics)
    assert {c.column for c in found.report.columns} == {"x", "kind"}


def test_a_failed_quality_report_is_a_stated_problem_and_drift_stands() -> None:
    config = classification_config(positive_label="Maybe")  # not a class of the data
    reference = labelled_frame(300, seed=0, classes=["No", "Yes"])
    current = labelled_frame(300, seed=1, classes=["No", "Yes"]).assign(x=lambda f: f["x"] + 3)
    found = compute_drift(reference, current, config, [], {})
    assert found.quality_snapshot is None
    assert found.report.quality is not None  # scikit-learn's figures on the labels still hold
    [problem] = found.report.problems
    assert problem.startswith("quality report not produced by Evidently: ConfigError")
    assert "positive_label 'Maybe'" in problem
    assert "x" in found.report.drifted_columns


def dated_frame(rows: int, seed: int, start: str) -> pd.DataFrame:
    """A regression frame whose feature `date` runs daily from `start`."""
    frame = small_frame(rows, seed)
    return frame.assign(date=pd.date_range(start, periods=rows, freq="D"))


def test_a_date_feature_drifts_on_the_parts_the_model_uses(
    small_config: PipelineConfig,
) -> None:
    config = small_config.model_copy(update={"datetime_features": ["date"]})
    reference = dated_frame(300, 0, "2024-01-01")
    current = dated_frame(300, 1, "2024-01-01")
    current["date"] = current["date"].dt.strftime("%Y-%m-%d")  # read back as text from a log
    current.loc[:150, "date"] = "2024-06-15"
    found = compute_drift(reference, current, config, [], {})
    by_column = {c.column: c for c in found.report.columns}
    assert "date" not in by_column
    assert set(by_column) >= {"date_month", "date_day", "date_dayofweek", "date_hour"}
    assert by_column["date_month"].drifted
    assert by_column["date_month"].detail == "month of datetime feature date"
    assert found.report.drifted_share == pytest.approx(1 / 4)  # date of steady, moving, kind, date
    assert found.report.problems == []


def test_a_date_feature_that_never_parses_is_skipped_with_its_reason(
    small_config: PipelineConfig,
) -> None:
    config = small_config.model_copy(update={"datetime_features": ["date"]})
    reference = small_frame(200, 0).assign(date="unknown")
    found = compute_drift(reference, small_frame(200, 1).assign(date="unknown"), config, [], {})
    date = next(c for c in found.report.columns if c.column == "date")
    assert not date.drifted
    assert found.report.problems == [
        "date: skipped: no reference value parses as a date, nothing to compare"
    ]


def test_the_quality_report_takes_the_holdout_as_its_reference(
    small_config: PipelineConfig,
) -> None:
    reference, current = small_frame(300, 0), small_frame(300, 1)
    with_holdout = compute_drift(
        reference, current, small_config, [], {}, holdout=small_frame(80, 2)
    )
    assert with_holdout.quality_snapshot is not None and with_holdout.report.problems == []
    unlabelled = small_frame(80, 2).drop(columns=["y"])  # proves which side the report reads
    found = compute_drift(reference, current, small_config, [], {}, holdout=unlabelled)
    assert found.quality_snapshot is None
    assert found.report.problems[0].startswith("quality report not produced by Evidently")
    assert found.report.quality is not None and found.report.drifted_columns == []


def test_binary_quality_report_takes_the_positive_class_probability() -> None:
    from tests.prefect_mlops.monitoring.test_quality import with_probabilities

    config = classification_config()
    holdout = with_probabilities(labelled_frame(300, seed=0, classes=[0, 1], share=0.1))
    current = with_probabilities(labelled_frame(300, seed=1, classes=[0, 1], share=0.1))
    found = compute_drift(
        holdout, current, config, [], {"pr_auc": 0.8}, positive_label=1, holdout=holdout,
        classes=[0, 1],
    )  # fmt: skip
    quality = found.report.quality
    assert quality is not None and quality.metric == "pr_auc"
    assert {"roc_auc", "pr_auc", "log_loss"} <= set(quality.current_metrics)
    assert found.quality_snapshot is not None
    results = json.loads(found.quality_snapshot.dumps())["metric_results"].values()
    evidently = {r["display_name"]: r.get("value") for r in results}
    assert evidently["RocAuc metric"] == pytest.approx(quality.current_metrics["roc_auc"])
