"""Quality on the labels that have arrived, against the training holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.config import PipelineConfig, parse_config
from prefect_mlops.monitoring import PREDICTION
from prefect_mlops.monitoring.quality import labelled_rows, quality_change
from tests.conftest import fast_config_dict


def test_quality_needs_enough_labels(config: PipelineConfig) -> None:
    current = pd.DataFrame({"bikers": [1.0, np.nan] * 30, PREDICTION: [2.0] * 60})
    assert quality_change(labelled_rows(current, config), config, {"rmse": 0.5}) is None  # 30 < 50
    current = pd.DataFrame({"bikers": [1.0] * 60, PREDICTION: [2.0] * 60})
    quality = quality_change(labelled_rows(current, config), config, {"rmse": 0.5})
    assert quality is not None
    assert quality.current == pytest.approx(1.0)
    assert quality.relative_change == pytest.approx(1.0)


def test_window_without_predictions_has_no_labelled_rows(config: PipelineConfig) -> None:
    rows = labelled_rows(pd.DataFrame({"bikers": [1.0, 2.0]}), config)
    assert list(rows.columns) == ["bikers", PREDICTION]
    assert rows.empty


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
