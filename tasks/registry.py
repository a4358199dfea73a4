"""Registry tasks: log, verify, register and promote models in MLflow, never half a change."""

from __future__ import annotations

from prefect import task
from sklearn.pipeline import Pipeline

from prefect_mlops.artifact_store import local_file
from prefect_mlops.context import TrainingContext
from prefect_mlops.gate import decide as decide_gate
from prefect_mlops.gate import decide_promotion
from prefect_mlops.io import read_parquet_head
from prefect_mlops.lineage import holdout_identity, lineage_tags, version_tags
from prefect_mlops.packaging import (
    check_model_loads,
    estimator_params,
    load_pipeline,
    log_sklearn_model,
    register_version,
    version_description,
    warm_up_model_logging,
)
from prefect_mlops.registry import (
    CHALLENGER,
    PENDING_ALIAS_TAG,
    promote_if_still_better,
    promote_version,
    roll_back,
)
from prefect_mlops.results import (
    ChampionScore,
    Evaluation,
    FeatureSchema,
    GateCheck,
    LoggedModel,
    ModelVersionRef,
    PreparedData,
    PromotionDecision,
    SplitRefs,
)
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import mlflow_client, use_tracking
from tasks.evaluate import compare_with_version
from tasks.locks import champion_lock
from tasks.policies import IO_RETRIES
from tasks.runners import IN_PROCESS
from tasks.track import with_flow_run_url


# In process: its loaded state serves this process's log_model, not a Dask worker's.
@task(tags=[IN_PROCESS], task_run_name="prepare model logging")
def prepare_model_logging() -> list[str]:
    """Pin and check the model's requirements and load skops, beside the refit (about 1.3 s)."""
    return warm_up_model_logging()


@task(**IO_RETRIES, task_run_name="log model {name}")
def log_model(
    model: Pipeline,
    split: SplitRefs,
    schema: FeatureSchema,
    run_id: str,
    settings: Settings,
    requirements: list[str] | None = None,
    name: str = "model",
) -> LoggedModel:
    """Log the fitted pipeline to the run with signature, input example and skops format, as a
    LoggedModel called `name` (the registered model's) in the run's experiment."""
    use_tracking(settings)
    example = read_parquet_head(local_file(split.holdout_uri), 5, columns=schema.features)
    params = estimator_params(model)
    info = log_sklearn_model(model, example, run_id, requirements, name=name, params=params)
    return LoggedModel(model_uri=info.model_uri, run_id=run_id, model_id=info.model_id)


@task(task_run_name="verify the logged model loads")
def verify_model_loads(
    logged: LoggedModel,
    model: Pipeline,
    split: SplitRefs,
    schema: FeatureSchema,
    settings: Settings,
) -> GateCheck:
    """Load the logged model back through MLflow and check it predicts like the fitted one."""
    use_tracking(settings)
    example = read_parquet_head(local_file(split.holdout_uri), 20, columns=schema.features)
    return check_model_loads(logged, model, example)


@task(**IO_RETRIES, task_run_name="register {ctx.model_name}")
def register_model(
    logged: LoggedModel, ctx: TrainingContext, data: PreparedData
) -> ModelVersionRef:
    """Register the logged model as a new version and point `challenger` at it, or undo both."""
    origin = with_flow_run_url(ctx.origin)
    lineage = lineage_tags(data.snapshot, data.validation, ctx.config, origin)
    use_tracking(ctx.settings)  # the client resolves `models:/m-...` sources through the fluent API
    client = mlflow_client(ctx.settings)
    # The pending tag lives until the alias is set: a version that still has it after its run
    # died is half made, and the recovery pass deletes it. How its holdout was cut (split_*)
    # is read from its training run, the version's source run.
    tags = {**version_tags(lineage, data.split), PENDING_ALIAS_TAG: CHALLENGER}
    ref = register_version(client, ctx.model_name, logged, tags)
    client.delete_model_version_tag(ref.name, ref.version, PENDING_ALIAS_TAG)
    return ref


@task(**IO_RETRIES, task_run_name="describe {version.name} v{version.version}")
def describe_version(
    version: ModelVersionRef,
    promotion: PromotionDecision,
    evaluation: Evaluation,
    champion: ChampionScore | None,
    load_check: GateCheck,
    ctx: TrainingContext,
    data: PreparedData,
) -> None:
    """Write the gate and promotion decisions as the version's description (Markdown)."""
    decision = decide_gate(evaluation, champion, load_check, ctx.config.gate)  # as the gate did
    origin = with_flow_run_url(ctx.origin)
    text = version_description(
        decision, promotion, evaluation, origin, holdout_identity(data.split)
    )
    mlflow_client(ctx.settings).update_model_version(version.name, version.version, text)


@task(**IO_RETRIES, task_run_name="promote {name} v{version}")
def promote_model(name: str, version: str, reason: str, settings: Settings) -> ModelVersionRef:
    """Make `version` the champion; the old champion stays reachable as `previous-champion`."""
    aliases = promote_version(
        mlflow_client(settings), name, version, reason, champion_lock(settings)
    )
    return ModelVersionRef(name=name, version=version, aliases=aliases)


@task(**IO_RETRIES, task_run_name="promote {challenger.name} v{challenger.version}")
def promote_challenger(
    ctx: TrainingContext,
    data: PreparedData,
    evaluation: Evaluation,
    champion: ChampionScore | None,
    challenger: ModelVersionRef,
    promotion: PromotionDecision,
) -> tuple[ModelVersionRef, PromotionDecision]:
    """Move the champion to the challenger under the model's lock; when another run moved it
    since the decision, score the new champion and decide again (it may no longer win)."""
    decision = promotion
    client = mlflow_client(ctx.settings)

    def redecide(current: str | None) -> bool:
        nonlocal decision
        score = None
        if current is not None:  # the challenger against the new champion, as the first time
            use_tracking(ctx.settings)
            uri = f"models:/{challenger.name}/{challenger.version}"
            model = load_pipeline(uri, ctx.settings.tracking_uri, ctx.settings.registry_uri)
            schema = data.feature_schema
            score = compare_with_version(
                model, current, data.split, schema, ctx.config, ctx.settings
            )
        decision = decide_promotion(
            evaluation, score, data.validation, challenger.version, ctx.config.gate
        )
        decision = decision.model_copy(
            update={"reason": f"champion moved during the run; decided again: {decision.reason}"}
        )
        return decision.promote

    moved = promote_if_still_better(
        client,
        challenger.name,
        challenger.version,
        champion.version if champion else None,
        redecide,
        champion_lock(ctx.settings),
    )
    if moved:
        client.set_model_version_tag(
            challenger.name, challenger.version, "promotion_reason", decision.reason
        )
    aliases = sorted(client.get_model_version(challenger.name, challenger.version).aliases)
    return challenger.model_copy(update={"aliases": aliases}), decision


@task(**IO_RETRIES, task_run_name="roll back {name}")
def rollback_model(name: str, settings: Settings) -> ModelVersionRef:
    """Swap `champion` and `previous-champion`: one step back, and one step forward again."""
    version, aliases = roll_back(mlflow_client(settings), name, champion_lock(settings))
    return ModelVersionRef(name=name, version=version, aliases=aliases)
