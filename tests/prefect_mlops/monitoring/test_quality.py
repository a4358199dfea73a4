"""Quality on the labels that have arrived, against the training holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from prefect_mlops.config import PipelineConfig, parse_config
from prefect_mlops.errors import ConfigError
from prefect_mlops.monitoring import PREDICTION, PROBABILITY_PREFIX
from prefect_mlops.monitoring.quality import labelled_rows, positive_label_for, quality_change
from tests.conftest import fast_config_dict
from tests.prefect_mlops.monitoring.conftest import classification_config, labelled_frame


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


@pytest.mark.parametrize(
    ("labels", "predictions", "expected"),
    [
        (["Yes", None, "No"], np.array(["Yes", "No", "No"], dtype=object), ["Yes", "No"]),
        ([1.0, np.nan, 0.0], np.array([1, 1, 0]), [1, 0]),
        ([True, None, "false"], np.array([True, True, False]), [True, False]),
        ([1, None, 0], np.array(["1", "1", "0"], dtype=object), ["1", "0"]),
    ],
    ids=["text", "integers-read-as-floats", "booleans-from-json", "integers-for-text-classes"],
)
def test_feedback_labels_take_the_type_of_the_model_classes(
    labels: list[object], predictions: np.ndarray, expected: list[object]
) -> None:
    config = classification_config()
    window = pd.DataFrame({"label": pd.Series(labels, dtype=object), PREDICTION: predictions})
    rows = labelled_rows(window, config)
    assert rows["label"].tolist() == expected
    assert rows["label"].dtype == rows[PREDICTION].dtype


def test_imbalanced_text_labels_judge_a_probability_metric_on_balanced_accuracy() -> None:
    config = classification_config()  # primary metric pr_auc needs probabilities
    window = labelled_frame(300, seed=1, classes=["No", "Yes"])
    window[PREDICTION] = "No"  # the majority class for every row
    quality = quality_change(labelled_rows(window, config), config, {"balanced_accuracy": 0.9})
    assert quality is not None and quality.metric == "balanced_accuracy"
    assert quality.current == pytest.approx(0.5)
    assert quality.current_metrics["accuracy"] == pytest.approx(0.95, abs=0.01)
    assert quality.current_metrics["recall_Yes"] == 0.0
    assert quality.relative_change == pytest.approx(0.4 / 0.9)


def test_positive_label_is_the_recorded_one_else_the_minority() -> None:
    config = classification_config()
    reference = labelled_frame(300, seed=0, classes=["No", "Yes"])
    assert positive_label_for(reference, config, None) == "Yes"
    assert positive_label_for(reference, config, "No") == "No"
    numbers = labelled_frame(300, seed=0, classes=[0, 1])
    assert positive_label_for(numbers, config, None) == 1
    named = classification_config(positive_label="Maybe")
    with pytest.raises(ConfigError, match=r"positive_label 'Maybe'.*classes are \['No', 'Yes'\]"):
        positive_label_for(reference, named, None)


def with_probabilities(frame: pd.DataFrame) -> pd.DataFrame:
    """The binary frame with a model's `proba:0` and `proba:1` columns (rising with `x`)."""
    score = np.clip(frame["x"].to_numpy() / 6 + 0.5, 0.0, 1.0)
    return frame.assign(**{f"{PROBABILITY_PREFIX}0": 1 - score, f"{PROBABILITY_PREFIX}1": score})


def test_probabilities_give_pr_and_roc_auc_as_in_training() -> None:
    config = classification_config()  # primary metric pr_auc
    window = with_probabilities(labelled_frame(400, seed=3, classes=[0, 1], share=0.1))
    score = window[f"{PROBABILITY_PREFIX}1"]
    window["label"] = window["label"].astype(object)  # as read back from the log
    rows = labelled_rows(window, config)
    quality = quality_change(rows, config, {"pr_auc": 0.9}, classes=[0, 1], positive_label=1)
    assert quality is not None and quality.metric == "pr_auc"
    expected = average_precision_score(window["label"].astype(int), score)
    assert quality.current == pytest.approx(expected)
    assert quality.current_metrics["roc_auc"] == pytest.approx(
        roc_auc_score(window["label"].astype(int), score)
    )
    bare = window.drop(columns=[f"{PROBABILITY_PREFIX}0", f"{PROBABILITY_PREFIX}1"])
    without = quality_change(labelled_rows(bare, config), config, {})
    assert without is not None and without.metric == "balanced_accuracy"
    assert "pr_auc" not in without.current_metrics
