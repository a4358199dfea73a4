"""Evaluate tasks: score the refit model on its holdout, and against the champion on the rows
neither of them was trained on."""

from __future__ import annotations

import logging

import pyarrow.parquet as pq
from mlflow.exceptions import MlflowException
from prefect import task
from sklearn.pipeline import Pipeline

from prefect_mlops.artifact_store import local_file
from prefect_mlops.comparison import (
    compare_models,
    compared_rows,
    lineage_columns,
    recorded_lineage,
    unseen_rows,
)
from prefect_mlops.config import PipelineConfig
from prefect_mlops.errors import RegistryError
from prefect_mlops.evaluation import evaluate_holdout, log_holdout_report, positive_label_of
from prefect_mlops.io import read_parquet
from prefect_mlops.packaging import load_pipeline
from prefect_mlops.registry import CHAMPION, version_by_alias
from prefect_mlops.results import ChampionScore, Evaluation, FeatureSchema, SplitRefs
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import mlflow_client, use_tracking
from tasks.policies import RELEASES_MEMORY


@task(**RELEASES_MEMORY, task_run_name="evaluate {config.registered_model_name} on the holdout")
def evaluate_model(
    model: Pipeline,
    split: SplitRefs,
    schema: FeatureSchema,
    config: PipelineConfig,
    run_id: str,
    settings: Settings,
) -> Evaluation:
    """Score the fitted model on the holdout and log metrics, slices and plots to MLflow."""
    holdout = read_parquet(local_file(split.holdout_uri), columns=schema.columns(*config.slices))
    report = evaluate_holdout(model, holdout, schema, config)
    log_holdout_report(mlflow_client(settings), run_id, report)
    return report.evaluation


@task(**RELEASES_MEMORY, task_run_name="compare {config.registered_model_name} with its champion")
def compare_with_champion(
    model: Pipeline,
    split: SplitRefs,
    schema: FeatureSchema,
    config: PipelineConfig,
    settings: Settings,
) -> ChampionScore | None:
    """Score challenger and champion on the holdout rows neither was trained on; None when
    there is no champion, and the reason when no such rows exist."""
    name = config.registered_model_name
    version = version_by_alias(mlflow_client(settings), name, CHAMPION)
    if version is None:
        return None
    return compare_with_version(model, version, split, schema, config, settings)


def compare_with_version(
    model: Pipeline,
    version: str,
    split: SplitRefs,
    schema: FeatureSchema,
    config: PipelineConfig,
    settings: Settings,
) -> ChampionScore:
    """The challenger against registered `version` on the holdout rows neither trained on (also
    for a promotion decided again because the champion moved meanwhile)."""
    name = config.registered_model_name
    lineage = recorded_lineage(mlflow_client(settings), name, version)
    local = local_file(split.holdout_uri)
    present = set(pq.read_schema(local).names)
    wanted = schema.columns(*lineage_columns(lineage, split.lineage))
    holdout = read_parquet(local, columns=[c for c in wanted if c in present])
    unseen = unseen_rows(holdout, lineage, version, config.gate.min_comparison_rows)
    time_column = split.lineage.time_column or (lineage.time_column if lineage else None)
    if unseen.reason is not None:
        compared = compared_rows(holdout, unseen, time_column)
        return ChampionScore(version=version, not_comparable=unseen.reason, compared_on=compared)
    use_tracking(settings)
    try:
        uri = f"models:/{name}/{version}"
        champion = load_pipeline(uri, settings.tracking_uri, settings.registry_uri)
        positive = positive_label_of(model, holdout, schema, config)
        return compare_models(
            model, champion, holdout, schema, version, unseen, time_column, positive
        )
    except (MlflowException, RegistryError, KeyError, ValueError) as exc:
        # An unsafe (pickle) or unloadable champion, or one the new columns do not fit, is
        # recorded, not fatal: promotion then waits for a person.
        log = logging.getLogger(__name__)
        log.warning("champion v%s cannot score this holdout: %s", version, exc)
        return ChampionScore(version=version, error=f"{type(exc).__name__}: {exc}")
