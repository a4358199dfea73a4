"""MLflow access for tasks: a client bound to the settings, never a global set at import."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request

import mlflow
import numpy as np
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.tracking.context import registry as context_registry
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_COMMIT,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NOTE,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
)

from prefect_mlops.config import PipelineConfig
from prefect_mlops.errors import ServerUnavailableError
from prefect_mlops.lineage import (
    FLOW_RUN_TAG,
    FLOW_RUN_URL_TAG,
    HOLDOUT_TAG,
    RunOrigin,
    describe_dataset,
    git_commit,
    holdout_identity,
    lineage_tags,
)
from prefect_mlops.names import confined
from prefect_mlops.registry import registry_client
from prefect_mlops.results import CandidateSpec, PreparedData
from prefect_mlops.settings import Settings

# The source a training run names in MLflow: the flow, wherever its process was started from.
TRAINING_ENTRYPOINT = "flows/training.py:training_flow"


def mlflow_client(settings: Settings) -> MlflowClient:
    """A client for the configured tracking and registry stores, with bounded HTTP calls."""
    bound_http_calls(settings)
    return registry_client(settings.tracking_uri, settings.registry_uri)


def bound_http_calls(settings: Settings) -> None:
    """Make MLflow's REST calls give up in seconds: its timeout, retries and backoff.

    MLflow reads these variables on every request; they are set from the one Settings a
    process runs with (which read them from the environment first, so a user's value stands).
    """
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.http_timeout_seconds)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.http_max_retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(settings.http_backoff_factor)


def check_tracking_server(settings: Settings) -> None:
    """ServerUnavailableError naming the tracking server when it does not answer its health
    check (one bounded request); nothing to check for a local store."""
    if settings.is_local_tracking:
        return
    url = f"{settings.tracking_uri.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(url, timeout=settings.http_timeout_seconds) as response:
            if response.status < 500:
                return
            reason = f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = str(getattr(exc, "reason", exc))
    raise ServerUnavailableError(
        f"MLflow tracking server at {settings.tracking_uri} is unreachable ({reason}); start it "
        "(`mlops up`) or point MLFLOW_TRACKING_URI at a running one"
    )


def use_tracking(settings: Settings) -> None:
    """Point MLflow's fluent API (log_model, load_model, `models:/` URIs) at the configured stores.

    Called by the tasks that need it, never at import. It is process-wide (MLflow also exports it
    to the environment), so it is only ever set to the one Settings a process runs with; it is not
    undone afterwards because undoing it also deletes MLFLOW_TRACKING_URI from the environment.
    """
    bound_http_calls(settings)
    mlflow.set_tracking_uri(settings.tracking_uri)
    if settings.registry_uri:
        mlflow.set_registry_uri(settings.registry_uri)


def ensure_experiment(client: MlflowClient, name: str, settings: Settings) -> str:
    """The id of experiment `name`, created (with a local artifact folder when local) if absent."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if settings.is_local_tracking:
        location = confined(settings.mlflow_artifact_dir, name, field="experiment_name").as_uri()
    return client.create_experiment(name, artifact_location=location)


# The parent's tags a candidate run repeats: who ran it from where, its Prefect run, its data.
INHERITED_TAGS = (
    MLFLOW_USER,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_GIT_COMMIT,
    FLOW_RUN_URL_TAG,
    HOLDOUT_TAG,
)


def source_tags(entrypoint: str) -> dict[str, str]:
    """MLflow's own run context (user, source type, git commit), as `mlflow.start_run` would
    record it, with the flow's entrypoint as the source (a worker's argv[0] says nothing)."""
    tags = {k: str(v) for k, v in context_registry.resolve_tags().items()}
    tags[MLFLOW_SOURCE_NAME] = entrypoint
    commit = git_commit()  # MLflow finds it only with GitPython, which the lock does not have
    if commit != "unknown":
        tags.setdefault(MLFLOW_GIT_COMMIT, commit)
    return tags


def log_candidate_run(
    client: MlflowClient,
    parent_run_id: str,
    spec: CandidateSpec,
    metric: str,
    fold_scores: np.ndarray,
    started_ms: int | None = None,
    cv_seconds: float | None = None,
) -> str:
    """One finished nested run under the training run: the candidate's parameters and CV score,
    spanning its cross-validation (`started_ms` is when it began, epoch milliseconds).

    It carries its parent's Prefect flow run id, so a crash between its creation and its end
    leaves a run the recovery pass finds and fails.
    """
    parent = client.get_run(parent_run_id)
    inherited = {k: v for k, v in parent.data.tags.items() if k in INHERITED_TAGS}
    run = client.create_run(
        parent.info.experiment_id,
        start_time=started_ms,
        run_name=spec.label,
        tags={
            **inherited,
            MLFLOW_PARENT_RUN_ID: parent_run_id,
            "candidate": spec.name,
            FLOW_RUN_TAG: parent.data.tags.get(FLOW_RUN_TAG, "none"),
        },
    )
    now = int(time.time() * 1000)
    metrics = [
        Metric(f"cv_{metric}_mean", float(fold_scores.mean()), now, 0),
        Metric(f"cv_{metric}_std", float(fold_scores.std()), now, 0),
    ]
    if cv_seconds is not None:
        metrics.append(Metric("cv_seconds", round(cv_seconds, 2), now, 0))
    client.log_batch(
        run.info.run_id,
        params=[Param(k, str(v)) for k, v in {"estimator": spec.estimator, **spec.params}.items()],
        metrics=metrics,
    )
    client.set_terminated(run.info.run_id, end_time=int(time.time() * 1000))
    return str(run.info.run_id)


def training_run_name(config: PipelineConfig, origin: RunOrigin) -> str:
    """The flow run's name (`train bikeshare-demand (manual)` already says it is a training),
    else `train-<config name>`."""
    name = origin.flow_run_name
    if name == "none":
        return f"train-{config.name}"
    return name if name.startswith("train") else f"train-{name}"


def training_run_note(config: PipelineConfig, data: PreparedData, origin: RunOrigin) -> str:
    """The run's description (Markdown, shown on its page): what it trains, on which data and
    holdout, started by which Prefect run and why."""
    flow_run = origin.flow_run_name if origin.flow_run_name != "none" else origin.flow_run_id
    link = f"[{flow_run}]({origin.flow_run_url})" if origin.flow_run_url else f"`{flow_run}`"
    split = data.split
    return (
        f"Training of **{config.registered_model_name}** ({config.task}, target "
        f"`{config.target}`) by Prefect flow run {link} (id `{origin.flow_run_id}`), "
        f"reason: {origin.reason}.\n\n"
        f"Data: {data.snapshot.rows:,} rows, snapshot `{data.snapshot.fingerprint}`; "
        f"{split.train_rows:,} training and {split.holdout_rows:,} holdout rows "
        f"({config.split.strategy} split). Holdout `{holdout_identity(split)}`: compare holdout "
        "metrics only between runs with the same `holdout` tag."
    )


def start_training_run(
    client: MlflowClient,
    experiment_id: str,
    config: PipelineConfig,
    data: PreparedData,
    origin: RunOrigin,
) -> str:
    """Open the parent MLflow run of a training run: lineage tags, parameters, dataset inputs."""
    run = client.create_run(
        experiment_id,
        run_name=training_run_name(config, origin),
        tags={
            **source_tags(TRAINING_ENTRYPOINT),
            **lineage_tags(data.snapshot, data.validation, config, origin),
            "trigger_reason": origin.reason,
            HOLDOUT_TAG: holdout_identity(data.split),
            MLFLOW_RUN_NOTE: training_run_note(config, data, origin),
        },
    )
    run_id = str(run.info.run_id)
    params = {
        "task": str(config.task),
        "target": config.target,
        "split_strategy": config.split.strategy,
        "test_size": config.split.test_size,
        "seed": config.seed,
        "cv_folds": config.tuning.cv_folds,
        "train_rows": data.split.train_rows,
        "holdout_rows": data.split.holdout_rows,
    }
    client.log_batch(run_id, params=[Param(key, str(value)) for key, value in params.items()])
    name = f"{config.name}-{data.snapshot.fingerprint}"
    inputs = [
        DatasetInput(
            describe_dataset(uri, name, context)._to_mlflow_entity(),
            [InputTag("mlflow.data.context", context)],
        )
        for context, uri in (
            ("training", data.split.train_uri),
            ("holdout", data.split.holdout_uri),
        )
    ]
    client.log_inputs(run_id, datasets=inputs)
    return run_id


def fail_open_runs(client: MlflowClient, flow_run_id: str) -> list[str]:
    """Mark every still-running MLflow run of a Prefect flow run as FAILED; their ids."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    query = f"tags.`{FLOW_RUN_TAG}` = '{flow_run_id}' and attributes.status = 'RUNNING'"
    failed = []
    for run in client.search_runs(experiments, filter_string=query):
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        failed.append(str(run.info.run_id))
    return failed


def open_runs_by_flow_run(client: MlflowClient) -> dict[str, list[str]]:
    """The MLflow runs still RUNNING, by the Prefect flow run id they are tagged with."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs: dict[str, list[str]] = {}
    for run in client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'"):
        flow_run_id = run.data.tags.get(FLOW_RUN_TAG)
        if flow_run_id and flow_run_id != "none":
            runs.setdefault(flow_run_id, []).append(str(run.info.run_id))
    return runs
