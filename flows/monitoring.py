"""The monitoring flow: reference vs current window -> validate -> drift -> decide -> alert."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from prefect import flow
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from prefect_mlops.config import load_config
from prefect_mlops.errors import MlopsError
from prefect_mlops.monitoring import DriftSummary, WindowSpec
from prefect_mlops.names import AliasName
from prefect_mlops.settings import Settings
from tasks.configure import load_pipeline_config
from tasks.monitor import (
    decide_monitoring,
    emit_monitoring_events,
    judge_empty_window,
    load_current_window,
    resolve_monitored_model,
    run_drift_report,
    score_windows,
    summarize_monitoring,
    validate_window,
)
from tasks.policies import exit_without_collection, refuse_pickle
from tasks.publish_monitoring import (
    add_to_workspace,
    final_state,
    log_monitoring_run,
    publish_monitoring_summary,
)
from tasks.recovery import recover_crashed_runs


class MonitoringParams(BaseModel):
    """Parameters of a monitoring run (the form in the Prefect UI)."""

    config_path: str = Field(
        default="configs/bikeshare.yaml", description="pipeline YAML, relative to the project"
    )
    alias: AliasName = Field(default="champion", description="which registered version to monitor")
    window: WindowSpec = Field(default_factory=WindowSpec, description="the current data")
    emit_events: bool = Field(default=True, description="emit Prefect events on a breach")
    retrain_deployment: str | None = Field(
        default=None,
        description="the deployment (flow/name) whose trigger retrains the model on a breach, "
        "named in the events; default: training/train-<model> when deployed, else training/train",
    )


def monitoring_run_name() -> str:
    """The flow run's name, e.g. `monitor bikeshare-demand@champion last 24h`.

    A config that cannot be read names the run by its file; the flow then fails on it with the
    config loader's own message.
    """
    raw = flow_run.parameters.get("params") or {}
    params = raw if isinstance(raw, MonitoringParams) else MonitoringParams.model_validate(raw)
    try:
        model = load_config(params.config_path).registered_model_name
    except MlopsError:  # reported by the flow's config task, see the docstring
        model = Path(params.config_path).stem
    return f"monitor {model}@{params.alias} {params.window.short()}"


@flow(
    name="monitoring",
    description="Compare live data with a model's training data; alert on drift.",
    flow_run_name=monitoring_run_name,
    on_running=[refuse_pickle, exit_without_collection],
)
def monitoring_flow(params: MonitoringParams = MonitoringParams()) -> DriftSummary:  # noqa: B008
    """Drift, prediction drift, quality and data validation of a served model, with alerts."""
    settings = Settings()
    recover_crashed_runs(settings)  # close what killed runs left
    config = load_pipeline_config(params.config_path)

    model = resolve_monitored_model(config.registered_model_name, params.alias, settings)
    window = load_current_window(params.window, config, model, settings)
    if window.rows == 0:  # a quiet window: "No traffic" and its event, unless configured
        decision = judge_empty_window(window, model, config)
        summary = summarize_monitoring(model, window, params.config_path, decision)
        if params.emit_events:
            summary = emit_monitoring_events(summary, params.retrain_deployment)
        publish_monitoring_summary(summary, settings)
        return cast(DriftSummary, final_state(summary))

    # Data validation and scoring read the window independently: run them side by side.
    validating = validate_window.submit(window, config, settings, model)
    scored = score_windows(model, window, config, settings)
    report = run_drift_report(scored, model, config, window)
    validation = validating.result()
    decision = decide_monitoring(report, validation, config)
    summary = summarize_monitoring(model, window, params.config_path, decision, report, validation)
    summary = log_monitoring_run(summary, config, settings)
    summary = add_to_workspace(summary, config, model, settings)
    if params.emit_events:
        summary = emit_monitoring_events(summary, params.retrain_deployment)
    publish_monitoring_summary(summary, settings)
    # An alarm ends in a Completed state named for it ("Drift detected"); callers get the summary.
    return cast(DriftSummary, final_state(summary))
