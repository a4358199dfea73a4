"""Registry tasks: log, verify, register and promote models in MLflow, never half a change."""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from prefect import get_run_logger, task
from sklearn.pipeline import Pipeline

from prefect_mlops.context import TrainingContext
from prefect_mlops.errors import RegistryError
from prefect_mlops.evaluation import holdout_metrics
from prefect_mlops.io import read_parquet, read_parquet_head
from prefect_mlops.lineage import lineage_tags
from prefect_mlops.packaging import (
    check_model_loads,
    load_pipeline,
    log_sklearn_model,
    register_version,
    warm_up_model_logging,
)
from prefect_mlops.registry import CHAMPION, promote_version, roll_back, version_by_alias
from prefect_mlops.results import (
    ChampionScore,
    FeatureSchema,
    GateCheck,
    LoggedModel,
    ModelVersionRef,
    PreparedData,
    SplitRefs,
)
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import mlflow_client, use_tracking
from tasks.policies import IO_RETRIES, RELEASES_MEMORY


@task
def prepare_model_logging() -> list[str]:
    """Pin and check the model's requirements and load skops, beside the refit (about 1.3 s)."""
    return warm_up_model_logging()


@task(**IO_RETRIES)
def log_model(
    model: Pipeline,
    split: SplitRefs,
    schema: FeatureSchema,
    run_id: str,
    settings: Settings,
    requirements: list[str] | None = None,
) -> LoggedModel:
    """Log the fitted pipeline to the run with signature, input example and skops format."""
    use_tracking(settings)
    example = read_parquet_head(split.holdout_uri, 5, columns=schema.features)
    info = log_sklearn_model(model, example, run_id, requirements)
    return LoggedModel(model_uri=info.model_uri, run_id=run_id, model_id=info.model_id)


@task
def verify_model_loads(
    logged: LoggedModel,
    model: Pipeline,
    split: SplitRefs,
    schema: FeatureSchema,
    settings: Settings,
) -> GateCheck:
    """Load the logged model back through MLflow and check it predicts like the fitted one."""
    use_tracking(settings)
    example = read_parquet_head(split.holdout_uri, 20, columns=schema.features)
    return check_model_loads(logged, model, example)


@task(**RELEASES_MEMORY)
def score_champion(
    name: str, split: SplitRefs, schema: FeatureSchema, settings: Settings
) -> ChampionScore | None:
    """Score the current champion on the same holdout, or None when there is no champion."""
    version = version_by_alias(mlflow_client(settings), name, CHAMPION)
    if version is None:
        return None
    use_tracking(settings)
    holdout = read_parquet(split.holdout_uri, columns=schema.columns())
    try:
        uri = f"models:/{name}/{version}"
        champion = load_pipeline(uri, settings.tracking_uri, settings.registry_uri)
        metrics = holdout_metrics(champion, holdout, schema)
    except (MlflowException, RegistryError, KeyError, ValueError) as exc:
        # An unsafe (pickle) or unloadable champion is recorded, not fatal: promotion then waits
        # for a person instead of comparing against nothing.
        get_run_logger().warning("champion v%s cannot score this holdout: %s", version, exc)
        return ChampionScore(version=version, error=f"{type(exc).__name__}: {exc}")
    return ChampionScore(version=version, metrics=metrics)


@task(**IO_RETRIES)
def register_model(
    logged: LoggedModel, ctx: TrainingContext, data: PreparedData
) -> ModelVersionRef:
    """Register the logged model as a new version and point `challenger` at it, or undo both."""
    lineage = lineage_tags(data.snapshot, data.validation, ctx.config, ctx.origin)
    use_tracking(ctx.settings)  # the client resolves `models:/m-...` sources through the fluent API
    client = mlflow_client(ctx.settings)
    tags = {**lineage, "mlflow_run_id": logged.run_id}
    return register_version(client, ctx.model_name, logged, tags)


@task(**IO_RETRIES)
def promote_model(name: str, version: str, reason: str, settings: Settings) -> ModelVersionRef:
    """Make `version` the champion; the old champion stays reachable as `previous-champion`."""
    aliases = promote_version(mlflow_client(settings), name, version, reason)
    return ModelVersionRef(name=name, version=version, aliases=aliases)


@task(**IO_RETRIES)
def rollback_model(name: str, settings: Settings) -> ModelVersionRef:
    """Swap `champion` and `previous-champion`: one step back, and one step forward again."""
    version, aliases = roll_back(mlflow_client(settings), name)
    return ModelVersionRef(name=name, version=version, aliases=aliases)
