"""The training flow: ingest -> validate -> features -> tune -> evaluate -> gate -> register."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from prefect import flow
from prefect.client.schemas.objects import FlowRun
from prefect.flows import Flow
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run as current_run
from prefect.states import State
from pydantic import BaseModel, Field
from sklearn.pipeline import Pipeline

from prefect_mlops.config import load_config
from prefect_mlops.context import TrainingContext
from prefect_mlops.errors import ConfigError, MlopsError
from prefect_mlops.lineage import RunOrigin
from prefect_mlops.names import artifact_key
from prefect_mlops.reruns import rerun_reason
from prefect_mlops.results import (
    CandidateScore,
    ChampionScore,
    Evaluation,
    GateCheck,
    GateDecision,
    LoggedModel,
    ModelVersionRef,
    PreparedData,
    PromotionDecision,
    TrainingResult,
)
from prefect_mlops.runtime import cpu_count
from prefect_mlops.settings import Settings
from tasks.approval import request_approval
from tasks.artifacts import store_snapshot
from tasks.configure import load_pipeline_config
from tasks.episode import find_retraining_cause, link_from_monitoring_run
from tasks.evaluate import compare_with_champion, evaluate_model
from tasks.gate import (
    decide_gate,
    decide_promotion,
    enforce_model_gate,
    record_promotion_decision,
)
from tasks.ingest import snapshot_source
from tasks.logs import quiet_hook_notices, run_logger
from tasks.policies import exit_without_collection, refuse_pickle
from tasks.progress import Progress, watch_task_runs
from tasks.recovery import recover_crashed_runs
from tasks.registry import (
    describe_version,
    log_model,
    prepare_model_logging,
    promote_challenger,
    register_model,
    verify_model_loads,
)
from tasks.report import (
    log_outcome,
    publish_gate_decision,
    publish_leaderboard,
    publish_links,
    publish_training_summary,
)
from tasks.rollout import hand_to_rollout
from tasks.runners import SettingsTaskRunner
from tasks.schema import derive_schema
from tasks.split import split_snapshot
from tasks.states import failed_with_reason
from tasks.track import (
    close_open_runs,
    find_earlier_version,
    finish_training_run,
    open_experiment,
    start_training_run,
)
from tasks.train import cross_validate_candidates, fit_model, pick_best, plan_candidates
from tasks.validate import enforce_data_gate, validate_snapshot


class TrainingParams(BaseModel):
    """Parameters of a training run (the form in the Prefect UI)."""

    config_path: str = Field(
        default="configs/bikeshare.yaml", description="pipeline YAML, relative to the project"
    )
    window: Literal["all", "recent"] = Field(
        default="all", description="'recent' trains on the config's training_window only"
    )
    reason: str = Field(default="manual", description="why this run started (e.g. an event id)")
    trigger_event: UUID | None = Field(
        default=None,
        description="the monitoring event that started this run (the retrain trigger sets it): "
        "the monitoring run that emitted it and this run link each other",
    )


@dataclass(frozen=True)
class TrainedCandidate:
    """The refit best candidate with everything the gate weighs."""

    model: Pipeline
    logged: LoggedModel
    evaluation: Evaluation
    champion: ChampionScore | None
    load_check: GateCheck


# What started a run, as its name says it: monitoring's events retrain on drift or decay.
_REASONS = {
    "mlops.model.drift-detected": "drift retrain",
    "mlops.model.performance-degraded": "decay retrain",
}


def training_run_name() -> str:
    """The flow run's name, from its parameters (Prefect calls it as the run starts)."""
    raw = current_run.parameters.get("params") or {}
    return describe_training(TrainingParams.model_validate(raw) if isinstance(raw, dict) else raw)


def describe_training(params: TrainingParams) -> str:
    """`train bikeshare-demand (drift retrain)`: the model and why the run started."""
    try:
        model = load_config(params.config_path).registered_model_name
    except (ConfigError, OSError):  # the run reports a bad config; naming it must not fail
        model = params.config_path.rsplit("/", 1)[-1].removesuffix(".yaml")
    why = _REASONS.get(params.reason.split(" ", 1)[0], params.reason)
    window = ", recent window" if params.window == "recent" else ""
    return f"train {model} ({why[:60]}{window})"


def _close_mlflow_runs(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """A failed flow run leaves no MLflow run marked RUNNING."""
    close_open_runs(Settings(), str(flow_run.id))


@flow(
    name="training",
    description="Train, gate and register a model from a pipeline config.",
    # Candidates bound themselves (tuning.parallel_candidates); the extra thread lets the three
    # preparation tasks run beside validation (which stays on the flow's thread).
    task_runner=SettingsTaskRunner(max_threads=cpu_count() + 1),
    flow_run_name=training_run_name,
    on_running=[quiet_hook_notices, refuse_pickle, exit_without_collection],
    on_failure=[_close_mlflow_runs],
)
def training_flow(params: TrainingParams = TrainingParams()) -> TrainingResult:  # noqa: B008
    """Train candidates on a fresh snapshot and register the best one if it passes the gates
    (a rerun on the data and config of an existing version trains nothing and names it)."""
    try:
        return train(params)
    except MlopsError as stop:  # a gate or check: its reason is the run's state message
        return failed_with_reason(stop)


def train(params: TrainingParams) -> TrainingResult:
    """The lifecycle of one training run, from recovery to the summary."""
    recover_crashed_runs(Settings())  # close what killed runs left, before adding to it
    ctx = open_training(params)
    data, experiment_id = prepare_data(ctx)
    earlier = find_earlier_version(ctx, data)
    if earlier is not None:
        return report_rerun(ctx, data, earlier)
    run_id = start_training_run(ctx, experiment_id, data)
    scores = tune_candidates(ctx, data, run_id)
    best = pick_best(scores)
    trained = train_best(ctx, data, best, run_id)
    decision = gate_candidate(ctx, trained)
    version, promotion = register_and_promote(ctx, data, trained, params.config_path)
    log_outcome(version, promotion, ctx.settings)
    result = TrainingResult(
        snapshot=data.snapshot,
        validation=data.validation,
        best=best,
        evaluation=trained.evaluation,
        decision=decision,
        model_version=version,
        promoted=promotion.promote,
        promotion_reason=promotion.reason,
        mlflow_run_id=run_id,
    )
    publish_training_summary(ctx, result, scores)
    publish_links(ctx, result)
    finish_training_run(run_id, ctx.settings)
    return result


def open_training(params: TrainingParams) -> TrainingContext:
    """The run's context: its checked config, the environment and what started it (a monitoring
    run's event: that run's page then links this one)."""
    origin = RunOrigin(
        flow_run_id=str(current_run.get_id() or "none"),
        flow_run_name=str(current_run.get_name() or "none"),
        reason=params.reason,
    )
    settings = Settings()
    config = load_pipeline_config(params.config_path, settings, "training")
    cause = find_retraining_cause(params.trigger_event) if params.trigger_event else None
    if cause is not None:
        link_from_monitoring_run(cause, config.registered_model_name)
    return TrainingContext(
        config=config, settings=settings, origin=origin, window=params.window, cause=cause
    )


def prepare_data(ctx: TrainingContext) -> tuple[PreparedData, str]:
    """Snapshot the source and pass its data gate; the schema, split and tracking store (its
    experiment id) are prepared beside Great Expectations, none of them training anything."""
    written = snapshot_source(ctx.config.source, ctx.settings.snapshot_dir, ctx.training_window)
    snapshot = store_snapshot(written, ctx.settings)  # by its URI from here on, on any host
    schema = derive_schema.submit(snapshot, ctx.config)
    split = split_snapshot.submit(snapshot, ctx.config, ctx.settings)
    experiment = open_experiment.submit(ctx)
    validation = validate_snapshot(written, ctx.config, ctx.settings)  # GX reads this host's file
    preparation: list[PrefectFuture[Any]] = [schema, split, experiment]
    wait(preparation)  # nothing outlives a failed gate
    enforce_data_gate(validation, ctx.config.validation.policy)
    data = PreparedData(
        snapshot=snapshot,
        validation=validation,
        feature_schema=schema.result(),  # the schema's error first
        split=split.result(),
    )
    return data, experiment.result()


def report_rerun(
    ctx: TrainingContext, data: PreparedData, earlier: ModelVersionRef
) -> TrainingResult:
    """Same snapshot and config as an existing version: train and register nothing, say which."""
    result = TrainingResult(
        snapshot=data.snapshot,
        validation=data.validation,
        model_version=earlier,
        promoted=False,
        promotion_reason=rerun_reason(earlier, data.snapshot, ctx.config.fingerprint()),
        rerun_of=earlier.version,
    )
    publish_training_summary(ctx, result, [])
    return result


def tune_candidates(ctx: TrainingContext, data: PreparedData, run_id: str) -> list[CandidateScore]:
    """Cross-validate every planned candidate as its own task and nested MLflow run."""
    specs = plan_candidates(ctx.config)
    run_logger().info(
        "%d candidates planned: %s", len(specs), "; ".join(spec.title for spec in specs)
    )
    progress = Progress(artifact_key("candidates", ctx.config.name), len(specs), "candidates")
    with watch_task_runs(progress, "cv ", "candidates cross-validated"):
        scores = cross_validate_candidates(
            specs, data.split, data.feature_schema, ctx.config, run_id, ctx.settings
        )
    progress.update(len(scores), f"all {len(scores)} candidates cross-validated")
    publish_leaderboard(scores, ctx.config)
    return scores


def train_best(
    ctx: TrainingContext, data: PreparedData, best: CandidateScore, run_id: str
) -> TrainedCandidate:
    """Refit the best candidate; evaluate it, log it and score the champion side by side."""
    schema, split = data.feature_schema, data.split
    run_logger().info(
        "best candidate %s: CV %s %s ± %s; refitting on %s rows",
        best.spec.title,
        best.metric,
        f"{best.cv_mean:.4g}",
        f"{best.cv_std:.2g}",
        f"{split.train_rows:,}",
    )
    steps = Progress(
        artifact_key("refit", ctx.config.name),
        3,
        f"refitting {best.spec.title} on {split.train_rows:,} rows "
        f"(its cross-validation took {best.fit_seconds:.0f} s)",
    )
    logging_ready = prepare_model_logging.submit()  # one-time costs, beside the refit
    model = fit_model(best.spec, split, schema, ctx.config.seed)
    steps.update(1, "refit done; evaluating on the holdout and against the champion")
    evaluation = evaluate_model.submit(model, split, schema, ctx.config, run_id, ctx.settings)
    champion = compare_with_champion.submit(model, split, schema, ctx.config, ctx.settings)
    requirements, name = logging_ready.result(), ctx.model_name  # the LoggedModel's name too
    logged = log_model(model, split, schema, run_id, ctx.settings, requirements, name)
    steps.update(2, "model logged; checking that it loads and predicts as fitted")
    load_check = verify_model_loads(logged, model, split, schema, ctx.settings)
    trained = TrainedCandidate(model, logged, evaluation.result(), champion.result(), load_check)
    steps.update(3, "refit, evaluated, logged and load-checked")
    return trained


def gate_candidate(ctx: TrainingContext, trained: TrainedCandidate) -> GateDecision:
    """Thresholds, the champion comparison and the load check: blessed, or the run stops."""
    gate = ctx.config.gate
    decision = decide_gate(trained.evaluation, trained.champion, trained.load_check, gate)
    publish_gate_decision(decision, ctx.config)
    enforce_model_gate(decision)
    return decision


def register_and_promote(
    ctx: TrainingContext, data: PreparedData, trained: TrainedCandidate, config_path: str = ""
) -> tuple[ModelVersionRef, PromotionDecision]:
    """Register the blessed challenger; move the champion when it is better (and approved),
    or hand it to a progressive rollout when the config's `rollout:` is enabled."""
    version = register_model(trained.logged, ctx, data)
    promotion = decide_promotion(
        trained.evaluation, trained.champion, data.validation, version, ctx.config.gate
    )
    # issue 14: against a champion, the rollout flow promotes (a first version has none to test)
    if promotion.promote and ctx.config.rollout.enabled and trained.champion is not None:
        promotion = hand_to_rollout(version, promotion, config_path, ctx.origin.flow_run_id)
    if promotion.promote and ctx.config.approval.required:
        promotion = request_approval(version, promotion, ctx.config.approval)
    if promotion.promote:  # under the champion lock, decided again if the champion moved
        version, promotion = promote_challenger(
            ctx, data, trained.evaluation, trained.champion, version, promotion
        )
    if not promotion.promote:
        record_promotion_decision(version, promotion, ctx.settings)
    checked = (trained.evaluation, trained.champion, trained.load_check)
    describe_version(version, promotion, *checked, ctx, data)  # the decisions, in the registry
    return version, promotion
