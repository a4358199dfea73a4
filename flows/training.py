"""The training flow: ingest -> validate -> features -> tune -> evaluate -> gate -> register."""

from __future__ import annotations

import os
from typing import Literal

from prefect import flow
from prefect.client.schemas.objects import FlowRun
from prefect.flows import Flow
from prefect.futures import wait
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from prefect_mlops.results import TrainingResult
from prefect_mlops.runtime import skip_exit_collection
from prefect_mlops.settings import Settings
from tasks.approval import request_approval
from tasks.configure import load_pipeline_config
from tasks.evaluate import evaluate_model
from tasks.features import derive_schema
from tasks.gate import decide_gate, decide_promotion, enforce_model_gate
from tasks.ingest import snapshot_source
from tasks.registry import (
    log_model,
    prepare_model_logging,
    promote_model,
    register_model,
    score_champion,
    verify_model_loads,
)
from tasks.report import publish_gate_decision, publish_leaderboard, publish_training_summary
from tasks.split import split_snapshot
from tasks.track import (
    fail_open_runs,
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


def _fail_mlflow_runs(flow: Flow, flow_run: FlowRun, state: State) -> None:
    """A failed flow run leaves no MLflow run marked RUNNING."""
    fail_open_runs(Settings(), str(flow_run.id))


@flow(
    name="training",
    description="Train, gate and register a model from a pipeline config.",
    # Candidates bound themselves (tuning.parallel_candidates); the extra thread lets the three
    # preparation tasks run beside validation (which stays on the flow's thread).
    task_runner=ThreadPoolTaskRunner(max_workers=(os.cpu_count() or 2) + 1),
    on_running=[skip_exit_collection],
    on_failure=[_fail_mlflow_runs],
)
def training_flow(params: TrainingParams = TrainingParams()) -> TrainingResult:  # noqa: B008
    """Train candidates on a fresh snapshot and register the best one if it passes the gates."""
    settings = Settings()
    config = load_pipeline_config(params.config_path)

    window = config.training_window if params.window == "recent" else None
    snapshot = snapshot_source(config.source, settings.snapshot_dir, window)
    # Independent steps run side by side: the schema, the split and the tracking store (none of
    # which trains anything) while Great Expectations validates, then evaluate || log || champion.
    schema_future = derive_schema.submit(snapshot, config)
    split_future = split_snapshot.submit(
        snapshot, config.split, config.target, config.seed, settings.split_dir
    )
    experiment_future = open_experiment.submit(config, settings)
    validation = validate_snapshot(snapshot, config, settings)
    wait([schema_future, split_future, experiment_future])  # nothing outlives a failed gate
    enforce_data_gate(validation, config.validation.policy)
    schema, split = schema_future.result(), split_future.result()  # the schema's error first
    run_id = start_training_run(
        experiment_future.result(), config, snapshot, validation, split, params.reason, settings
    )

    specs = plan_candidates(config)
    scores = cross_validate_candidates(specs, split, schema, config, run_id, settings)
    publish_leaderboard(scores, config)
    best = pick_best(scores)
    logging_ready = prepare_model_logging.submit()  # beside the refit
    model = fit_model(best.spec, split, schema, config.seed)
    evaluation_future = evaluate_model.submit(model, split, schema, config, run_id, settings)
    champion_future = score_champion.submit(config.registered_model_name, split, schema, settings)
    logged = log_model(model, split, schema, run_id, settings, logging_ready.result())
    load_check = verify_model_loads(logged, model, split, schema, settings)
    evaluation, champion = evaluation_future.result(), champion_future.result()
    decision = decide_gate(evaluation, champion, load_check, config.gate)
    publish_gate_decision(decision, config)
    enforce_model_gate(decision)

    version = register_model(logged, config, snapshot, validation, settings)
    promotion = decide_promotion(evaluation, champion, config.gate)
    if promotion.promote and config.approval.required:
        promotion = request_approval(version, promotion, config.approval)
    if promotion.promote:
        version = promote_model(version.name, version.version, promotion.reason, settings)
    publish_training_summary(
        config,
        snapshot,
        validation,
        scores,
        evaluation,
        decision,
        version,
        promotion.reason,
        settings.tracking_uri,
        run_id,
    )
    finish_training_run(run_id, settings)
    return TrainingResult(
        snapshot=snapshot,
        validation=validation,
        best=best,
        evaluation=evaluation,
        decision=decision,
        model_version=version,
        promoted=promotion.promote,
        mlflow_run_id=run_id,
    )
