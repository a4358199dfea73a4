"""The batch scoring flow: resolve champion -> validate input -> score in chunks -> publish."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run
from pydantic import BaseModel, Field, model_validator

from prefect_mlops.config import load_config
from prefect_mlops.destinations import Destination, same_sqlite_file
from prefect_mlops.errors import ConfigError, MlopsError
from prefect_mlops.names import AliasName
from prefect_mlops.settings import Settings
from prefect_mlops.sources import Source
from tasks.configure import load_pipeline_config
from tasks.logs import quiet_hook_notices
from tasks.policies import exit_without_collection, refuse_pickle
from tasks.runners import SettingsTaskRunner
from tasks.score import (
    ScoringSummary,
    enforce_scoring_gate,
    publish_scoring_summary,
    resolve_model,
    score_source,
    validate_source,
)
from tasks.states import failed_with_reason


class ScoringParams(BaseModel):
    """Parameters of a scoring run (the form in the Prefect UI)."""

    config_path: str = Field(default="configs/bikeshare.yaml", description="pipeline YAML")
    source: Source = Field(description="rows to score (CSV, Parquet or SQL)")
    destination: Destination = Field(description="where predictions are written")
    alias: AliasName = Field(default="champion", description="which registered version scores")
    chunk_rows: int = Field(default=50_000, ge=1, description="rows held in memory at once")
    log_predictions: bool = Field(default=True, description="append to the prediction log")
    log_url: str | None = Field(default=None, description="SQLAlchemy URL of the log")

    @model_validator(mode="after")
    def _check_sqlite_files(self) -> ScoringParams:
        if same_sqlite_file(self.source, self.destination):
            raise ValueError(
                "destination.url is the SQLite file of source.url: SQLite cannot commit "
                "predictions while the source is still being read; write to another file"
            )
        return self


def scoring_run_name() -> str:
    """`score bikeshare-demand@champion: data/landing.csv`: the model and the rows it scores."""
    raw = flow_run.parameters.get("params") or {}
    params = ScoringParams.model_validate(raw) if isinstance(raw, dict) else raw
    try:
        model = load_config(params.config_path).registered_model_name
    except (ConfigError, OSError):  # the run reports a bad config; naming it must not fail
        model = params.config_path.rsplit("/", 1)[-1].removesuffix(".yaml")
    return f"score {model}@{params.alias}: {params.source.describe()}"


@flow(
    name="batch-scoring",
    description="Score a dataset with the champion model in chunks.",
    task_runner=SettingsTaskRunner(),
    flow_run_name=scoring_run_name,
    on_running=[quiet_hook_notices, refuse_pickle, exit_without_collection],
)
def scoring_flow(params: ScoringParams) -> ScoringSummary:
    """Validate a dataset, score it with the aliased model and record the predictions."""
    try:
        return score(params)
    except MlopsError as stop:  # a gate or check: its reason is the run's state message
        return failed_with_reason(stop)


def score(params: ScoringParams) -> ScoringSummary:
    """The lifecycle of one scoring run: model, validation, chunked scoring, summary."""
    settings = Settings()
    config = load_pipeline_config(params.config_path)
    batch_id = f"batch-{flow_run.get_id() or 'local'}"

    model = resolve_model(config.registered_model_name, params.alias, settings)
    validation = validate_source(
        model, params.source, config, params.chunk_rows, batch_id, settings
    )
    enforce_scoring_gate(validation, config.validation.policy)
    log_dir = settings.prediction_log_dir
    log_url = params.log_url or settings.prediction_log_url  # where the service logs, by default
    log_location = (log_url, log_dir) if params.log_predictions else None
    summary = score_source(
        model,
        params.source,
        params.destination,
        params.chunk_rows,
        batch_id,
        log_location,
        settings,
    )
    publish_scoring_summary(summary, config)
    return summary
