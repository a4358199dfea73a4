"""Holdout metrics for imbalanced and multiclass targets of any label type, and their names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from prefect_mlops.config import parse_config
from prefect_mlops.errors import ConfigError
from prefect_mlops.metrics import (
    classification_metrics,
    decode_label,
    encode_label,
    higher_is_better,
    recall_key,
    resolve_positive_label,
    scorer,
)
from tests.conftest import fast_config_dict


def rare_yes(rows: int = 400, seed: int = 0) -> tuple[pd.Series, np.ndarray]:
    """About 5% "Yes", and a score that ranks most of them first."""
    rng = np.random.default_rng(seed)
    truth = pd.Series(np.where(rng.random(rows) < 0.05, "Yes", "No"), dtype=object)
    score = np.clip((truth == "Yes") * 0.5 + rng.random(rows) * 0.6, 0, 1)
    return truth, score.to_numpy()


def test_majority_answer_scores_high_accuracy_but_chance_balanced_accuracy() -> None:
    truth, score = rare_yes()
    classes = np.array(["No", "Yes"], dtype=object)
    always_no = np.full(len(truth), "No", dtype=object)
    found = classification_metrics(truth, always_no, np.column_stack([1 - score, score]), classes)
    assert found["accuracy"] > 0.9
    assert found["balanced_accuracy"] == pytest.approx(0.5)
    assert (found["recall_No"], found["recall_Yes"]) == (1.0, 0.0)
    assert found["pr_auc"] > (truth == "Yes").mean()  # the score still ranks "Yes" first
    assert np.isfinite(found["roc_auc"]) and np.isfinite(found["log_loss"])


def test_pr_auc_is_computed_for_the_positive_class() -> None:
    truth, score = rare_yes()
    classes = np.array(["No", "Yes"], dtype=object)
    proba = np.column_stack([1 - score, score])
    predicted = np.where(score > 0.5, "Yes", "No")
    for_yes = classification_metrics(truth, predicted, proba, classes)["pr_auc"]
    for_no = classification_metrics(truth, predicted, proba, classes, positive_label="No")
    # "No" is 95% of the rows: precise on it by chance, where "Yes" has to be found
    assert for_no["pr_auc"] > 0.95 > for_yes


@pytest.mark.parametrize("classes", [[0, 1], [False, True]], ids=["integers", "booleans"])
def test_integer_and_boolean_labels_get_the_same_metrics(classes: list[object]) -> None:
    truth, score = rare_yes()
    mapped = truth.map({"No": classes[0], "Yes": classes[1]}).astype(type(classes[0]))
    predicted = np.where(score > 0.5, classes[1], classes[0])
    found = classification_metrics(
        mapped, predicted, np.column_stack([1 - score, score]), np.array(classes)
    )
    text = classification_metrics(
        truth,
        np.where(score > 0.5, "Yes", "No"),
        np.column_stack([1 - score, score]),
        np.array(["No", "Yes"], dtype=object),
    )
    assert found["pr_auc"] == pytest.approx(text["pr_auc"])
    assert found[f"recall_{classes[1]}"] == pytest.approx(text["recall_Yes"])


def test_multiclass_pr_auc_is_a_macro_average_and_absent_classes_have_no_recall() -> None:
    truth = pd.Series(["a", "b", "a", "b", "a", "b"])
    classes = np.array(["a", "b", "c"], dtype=object)
    proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1]] * 3)
    found = classification_metrics(truth, np.array(["a", "b"] * 3), proba, classes)
    assert found["pr_auc"] == pytest.approx(1.0)
    assert np.isnan(found["recall_c"])


def test_positive_label_defaults_to_the_minority_class_and_is_checked() -> None:
    truth, _ = rare_yes()
    classes = np.array(["No", "Yes"], dtype=object)
    assert resolve_positive_label(classes, truth, None) == "Yes"
    assert resolve_positive_label(classes, truth, "No") == "No"
    assert resolve_positive_label(np.array([0, 1, 2]), pd.Series([0, 1, 2]), None) is None
    with pytest.raises(ConfigError, match=r"positive_label True \(bool\).*quote the label"):
        resolve_positive_label(classes, truth, True)  # YAML's reading of `positive_label: Yes`
    with pytest.raises(ConfigError, match="is not a class"):
        resolve_positive_label(np.array([0, 1]), pd.Series([0, 1]), True)  # True == 1, not a bool
    with pytest.raises(ConfigError, match="binary classification only"):
        resolve_positive_label(np.array(["a", "b", "c"]), pd.Series(["a"]), "a")


def test_labels_round_trip_through_a_tag_with_their_type() -> None:
    for label in ("Yes", 1, True):
        assert decode_label(encode_label(label)) == label
        assert type(decode_label(encode_label(label))) is type(label)
    assert encode_label(np.int64(1)) == "1"
    assert decode_label(None) is None


def test_recall_keys_are_safe_metric_names() -> None:
    assert recall_key("Yes") == "recall_Yes"
    assert recall_key(True) == "recall_True"
    assert recall_key("heavy rain/snow") == "recall_heavy_rain_snow"
    assert higher_is_better("recall_Yes") and not higher_is_better("log_loss")


def test_pr_auc_scorer_cross_validates_text_labels() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 1))
    y = np.where(x[:, 0] + rng.normal(0, 0.5, 300) > 1.6, "Yes", "No")
    scores = cross_val_score(
        LogisticRegression(), x, y, cv=3, scoring=scorer("pr_auc", "Yes"), error_score="raise"
    )
    assert np.all(scores > 0.3)


def test_gate_config_accepts_imbalance_metrics_and_refuses_unknown_ones() -> None:
    raw = fast_config_dict(
        task="classification",
        candidates=[{"name": "logreg", "estimator": "logistic_regression"}],
        positive_label="Yes",
        gate={
            "primary_metric": "pr_auc",
            "thresholds": {"balanced_accuracy": {"min": 0.6}, "recall_Yes": {"min": 0.5}},
        },
    )
    config = parse_config(raw)
    assert config.positive_label == "Yes" and config.gate.beat_baseline
    with pytest.raises(ConfigError, match=r"not the metric candidates are ranked on"):
        parse_config({**raw, "gate": {"primary_metric": "recall_Yes"}})
    with pytest.raises(ConfigError, match=r"unknown for classification.*recall_<class>"):
        parse_config({**raw, "gate": {"primary_metric": "pr_auc", "thresholds": {"prauc": {}}}})
    with pytest.raises(ConfigError, match="positive_label applies to task classification"):
        parse_config(fast_config_dict(positive_label=1))
