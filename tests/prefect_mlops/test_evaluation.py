"""Holdout evaluation of imbalanced classifiers: metrics, the dummy baseline, the gate's rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from prefect_mlops.config import PipelineConfig, load_config, parse_config
from prefect_mlops.errors import ConfigError
from prefect_mlops.estimators import build_model
from prefect_mlops.evaluation import (
    HoldoutReport,
    baseline_score,
    evaluate_holdout,
    log_holdout_report,
    slice_table,
)
from prefect_mlops.features import build_preprocessor, infer_schema
from prefect_mlops.gate import decide
from prefect_mlops.metrics import POSITIVE_LABEL_TAG, decode_label
from prefect_mlops.results import CandidateSpec, FeatureSchema, GateCheck
from prefect_mlops.settings import Settings
from tests.conftest import BIKESHARE_CONFIG, fast_config_dict

LOADS = GateCheck(rule="loads", passed=True, detail="ok")


def churn_config(**overrides: object) -> PipelineConfig:
    raw = fast_config_dict(
        task="classification",
        target="churn",
        exclude=[],
        categorical_features=[],
        datetime_features=[],
        split={"strategy": "stratified", "test_size": 0.25},
        slices=[],
        candidates=[{"name": "logreg", "estimator": "logistic_regression"}],
        gate={"primary_metric": "accuracy", "thresholds": {"accuracy": {"min": 0.9}}},
    )
    return parse_config({**raw, **overrides})


def churn(rows: int, seed: int) -> pd.DataFrame:
    """About 5% "Yes", more likely at high `usage`."""
    rng = np.random.default_rng(seed)
    usage = rng.normal(size=rows)
    yes = usage + rng.normal(0, 0.4, rows) > 1.75
    return pd.DataFrame({"usage": usage, "tenure": rng.normal(size=rows), "churn": "No"}).assign(
        churn=lambda f: np.where(yes, "Yes", "No")
    )


def fitted(config: PipelineConfig, c: float) -> tuple[Pipeline, pd.DataFrame]:
    train, holdout = churn(400, 0), churn(300, 1)
    schema = infer_schema(train, config)
    model = Pipeline(
        [("prep", build_preprocessor(schema)), ("model", LogisticRegression(C=c))]
    ).fit(train[schema.features], train["churn"])
    return model, holdout


def test_imbalanced_holdout_gets_pr_auc_balanced_accuracy_and_recalls() -> None:
    config = churn_config()
    model, holdout = fitted(config, c=10.0)
    report = evaluate_holdout(model, holdout, infer_schema(holdout, config), config)
    metrics = report.evaluation.metrics
    assert report.evaluation.positive_label == "Yes"  # the minority class
    assert {"pr_auc", "balanced_accuracy", "recall_No", "recall_Yes"} <= set(metrics)
    assert metrics["pr_auc"] > 0.3 and metrics["balanced_accuracy"] > 0.6
    assert "precision_recall_curve.png" in report.figures
    baseline = report.evaluation.baseline
    assert baseline is not None
    assert baseline.estimator == "DummyClassifier(strategy='most_frequent')"
    assert (baseline.metric, baseline.value, baseline.predicts) == (
        "balanced_accuracy",
        0.5,
        "'No' for every row",
    )
    assert decide(report.evaluation, None, LOADS, config.gate).passed


def test_a_model_answering_the_majority_class_fails_the_gate_despite_its_accuracy() -> None:
    config = churn_config()
    model, holdout = fitted(config, c=1e-6)  # regularised into answering "No" for every row
    evaluation = evaluate_holdout(model, holdout, infer_schema(holdout, config), config).evaluation
    assert evaluation.metrics["accuracy"] >= 0.9
    decision = decide(evaluation, None, LOADS, config.gate)
    [violation] = decision.violations
    assert (
        violation.rule == "balanced_accuracy better than DummyClassifier(strategy='most_frequent')"
    )
    assert violation.detail == "candidate 0.5 vs 0.5 of the dummy answering 'No' for every row"
    relaxed = config.gate.model_copy(update={"beat_baseline": False})
    assert decide(evaluation, None, LOADS, relaxed).passed


def test_a_configured_positive_label_is_checked_against_the_trained_classes() -> None:
    config = churn_config(positive_label="yes")
    model, holdout = fitted(config, c=10.0)
    with pytest.raises(ConfigError, match=r"positive_label 'yes'.*classes are \['No', 'Yes'\]"):
        evaluate_holdout(model, holdout, infer_schema(holdout, config), config)


def test_the_positive_label_and_the_baseline_are_recorded_on_the_run(settings: Settings) -> None:
    config = churn_config(positive_label="No")
    model, holdout = fitted(config, c=10.0)
    report = evaluate_holdout(model, holdout, infer_schema(holdout, config), config)
    client = MlflowClient(settings.tracking_uri)
    run_id = client.create_run(client.create_experiment("evaluation")).info.run_id
    log_holdout_report(client, run_id, report)
    run = client.get_run(run_id)
    assert decode_label(run.data.tags[POSITIVE_LABEL_TAG]) == "No"
    assert run.data.metrics["baseline_balanced_accuracy"] == 0.5
    assert run.data.metrics["holdout_recall_Yes"] == report.evaluation.metrics["recall_Yes"]


def test_regression_has_no_dummy_bar() -> None:
    schema = FeatureSchema(target="y", task="regression", numeric=["x"])
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 4.0]})
    assert baseline_score(frame, schema) is None


def regression_report(bikeshare: pd.DataFrame) -> HoldoutReport:
    config = load_config(BIKESHARE_CONFIG)
    schema = infer_schema(bikeshare, config)
    spec = CandidateSpec(name="ridge", estimator="linear", params={}, index=0)
    train, holdout = bikeshare.iloc[:600], bikeshare.iloc[600:900]
    model = build_model(spec, schema, 0).fit(train[schema.features], train[schema.target])
    return evaluate_holdout(model, holdout, schema, config)


def test_every_evaluation_plot_is_titled(bikeshare: pd.DataFrame) -> None:
    report = regression_report(bikeshare)
    assert {"actual_vs_predicted.png", "feature_importance.png", "slice_metrics.png"} <= set(
        report.figures
    )
    for name, figure in report.figures.items():
        titles = [ax.get_title() for ax in figure.axes if ax.get_label() != "<colorbar>"]
        assert titles and all(titles), name
    assert "300 rows" in report.figures["actual_vs_predicted.png"].axes[0].get_title()


def test_slice_metrics_become_one_rounded_row_per_slice_value(bikeshare: pd.DataFrame) -> None:
    report = regression_report(bikeshare)
    table = slice_table(report.evaluation.slices)
    assert list(table.columns[:3]) == ["column", "value", "rows"]
    assert set(table["column"]) == {"season", "workingday"}
    expected = sum(len(values) for values in report.evaluation.slices.values())
    assert len(table) == expected
    rmse = report.evaluation.slices["workingday"]["1"]["rmse"]
    row = table[(table["column"] == "workingday") & (table["value"] == "1")].iloc[0]
    assert row["rmse"] == float(f"{rmse:.4g}") and row["rmse"] == pytest.approx(rmse, rel=1e-3)
