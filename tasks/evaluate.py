"""Evaluate task: score the refit model on its holdout and record what it found in MLflow."""

from __future__ import annotations

from prefect import task
from sklearn.pipeline import Pipeline

from prefect_mlops.config import PipelineConfig
from prefect_mlops.evaluation import evaluate_holdout, log_holdout_report
from prefect_mlops.io import read_parquet
from prefect_mlops.results import Evaluation, FeatureSchema, SplitRefs
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import mlflow_client
from tasks.policies import RELEASES_MEMORY


@task(**RELEASES_MEMORY)
def evaluate_model(
    model: Pipeline,
    split: SplitRefs,
    schema: FeatureSchema,
    config: PipelineConfig,
    run_id: str,
    settings: Settings,
) -> Evaluation:
    """Score the fitted model on the holdout and log metrics, slices and plots to MLflow."""
    holdout = read_parquet(split.holdout_uri, columns=schema.columns(*config.slices))
    report = evaluate_holdout(model, holdout, schema, config)
    log_holdout_report(mlflow_client(settings), run_id, report)
    return report.evaluation
