"""The training and batch-scoring flows on a Dask cluster (a scheduler and two worker processes on
loopback) give the metrics and predictions of the thread runner, with their task runs in Prefect."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import distributed
import numpy as np
import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.scoring import ScoringParams, scoring_flow
from flows.training import TrainingParams, training_flow
from prefect_mlops.dask_runner import local_cluster_kwargs
from prefect_mlops.destinations import ParquetDestination
from prefect_mlops.results import TrainingResult
from prefect_mlops.sources import CsvSource
from tests.conftest import ROOT, fast_config_dict, write_config

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    """A scheduler and two single-thread worker processes on 127.0.0.1."""
    kwargs = {**local_cluster_kwargs(), "n_workers": 2, "threads_per_worker": 1}
    with distributed.LocalCluster(**kwargs) as local:
        yield local


def use_environment(
    monkeypatch: pytest.MonkeyPatch, root: Path, template: Path, runner: str
) -> None:
    """A fresh MLflow store, artifact root and GX project under `root`, and the task runner."""
    root.mkdir()
    shutil.copy(template, root / "mlflow.db")
    shutil.copytree(
        ROOT / "great_expectations",
        root / "great_expectations",
        ignore=shutil.ignore_patterns("uncommitted"),
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.setenv("MLOPS_ARTIFACT_ROOT", str(root / "artifacts"))
    monkeypatch.setenv("MLOPS_GX_ROOT", str(root / "great_expectations"))
    monkeypatch.setenv("MLOPS_TASK_RUNNER", runner)


def dask_task_counts(cluster: distributed.LocalCluster) -> dict[str, int]:
    """Tasks the scheduler has seen computed, by key prefix (a Prefect task's function name;
    joblib's batches are `batch_of_<function>_<n>_calls`)."""
    with distributed.Client(cluster, set_as_default=False) as client:
        prefixes: dict[str, int] = client.run_on_scheduler(
            lambda dask_scheduler: {
                name: prefix.state_counts.get("memory", 0)  # counts every entry into a state
                for name, prefix in dask_scheduler.task_prefixes.items()
            }
        )
    return prefixes


async def task_runs_of(flow_run_id: Any) -> list[tuple[str, str]]:
    """The task runs of a flow run that the Prefect UI lists: task function and state."""
    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return [(run.task_key.rsplit("-", 1)[0], str(run.state_name)) for run in runs]


def train(config: Path) -> tuple[TrainingResult, Any]:
    state = training_flow(TrainingParams(config_path=str(config)), return_state=True)
    return state.result(), state.state_details.flow_run_id


@dataclass
class Trained:
    """One training run on threads and one on the cluster, each with its own stores."""

    on_threads: TrainingResult
    on_dask: TrainingResult
    dask_flow_run_id: Any
    ran_on_dask: dict[str, int]
    dask_root: Path
    config: Path


@pytest.fixture(scope="module")
def trained(
    cluster: distributed.LocalCluster,
    mlflow_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Trained]:
    root = tmp_path_factory.mktemp("dask-flows")
    # Linear candidates: on a machine shared with other work, an OpenMP refit (boosting) can take
    # minutes while its threads wait on each other; what is compared here is the runner.
    candidates = [
        {"name": "ridge", "estimator": "linear", "search_space": {"alpha": [1.0]}},
        {"name": "ridge_strong", "estimator": "linear", "params": {"alpha": 30.0}},
    ]
    raw = fast_config_dict(candidates=candidates)
    raw["gate"]["thresholds"] = {}  # linear models miss the example's r2 threshold
    config = write_config(root / "fast.yaml", raw)
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_environment(monkeypatch, root / "threads", mlflow_template, "threads")
        on_threads, _ = train(config)
        before = dask_task_counts(cluster)
        use_environment(monkeypatch, root / "dask", mlflow_template, cluster.scheduler_address)
        on_dask, flow_run_id = train(config)
        ran = {k: v - before.get(k, 0) for k, v in dask_task_counts(cluster).items()}
        yield Trained(on_threads, on_dask, flow_run_id, ran, root / "dask", config)


def test_training_on_dask_gives_the_metrics_of_threads(trained: Trained) -> None:
    on_dask, on_threads = trained.on_dask, trained.on_threads
    assert on_dask.best is not None and on_threads.best is not None
    assert on_dask.best.spec == on_threads.best.spec
    assert on_dask.best.cv_mean == pytest.approx(on_threads.best.cv_mean, rel=1e-9)
    assert on_dask.evaluation is not None and on_threads.evaluation is not None
    assert on_dask.evaluation.metrics == pytest.approx(on_threads.evaluation.metrics, rel=1e-9)
    assert on_dask.model_version is not None and on_dask.model_version.version == "1"


def test_candidates_and_folds_run_on_the_cluster_and_the_warm_up_in_process(
    trained: Trained,
) -> None:
    assert trained.ran_on_dask.get("score_candidate", 0) == 2  # both candidates
    folds = sum(n for name, n in trained.ran_on_dask.items() if "_fit_and_score" in name)
    assert folds >= 2  # their folds, through joblib's Dask backend (it may batch them)
    assert "prepare_model_logging" not in trained.ran_on_dask  # stays on the flow's process


def test_candidate_task_runs_from_dask_workers_are_in_prefect(trained: Trained) -> None:
    runs = asyncio.run(task_runs_of(trained.dask_flow_run_id))
    assert [state for task, state in runs if task == "score_candidate"] == ["Completed"] * 2
    assert [state for task, state in runs if task == "prepare_model_logging"] == ["Completed"]


def test_batch_scoring_on_dask_writes_the_predictions_of_threads_in_prefect_task_runs(
    trained: Trained,
    cluster: distributed.LocalCluster,
    mlflow_template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bikeshare: pd.DataFrame,
) -> None:
    root = trained.dask_root  # its champion scores on both runners
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.setenv("MLOPS_ARTIFACT_ROOT", str(root / "artifacts"))
    monkeypatch.setenv("MLOPS_GX_ROOT", str(root / "great_expectations"))
    rows = tmp_path / "rows.csv"
    bikeshare.drop(columns=["bikers"]).head(2_000).to_csv(rows, index=False)

    def score(runner: str, output: str) -> tuple[pd.DataFrame, Any]:
        monkeypatch.setenv("MLOPS_TASK_RUNNER", runner)
        params = ScoringParams(
            config_path=str(trained.config),
            source=CsvSource(path=str(rows)),
            destination=ParquetDestination(path=str(tmp_path / output)),
            chunk_rows=300,
            log_predictions=False,
        )
        state = scoring_flow(params, return_state=True)
        assert state.result().rows == 2_000
        return pd.read_parquet(tmp_path / output), state.state_details.flow_run_id

    on_threads, _ = score("threads", "threads.parquet")
    before = dask_task_counts(cluster)
    on_dask, flow_run_id = score(cluster.scheduler_address, "dask.parquet")

    pd.testing.assert_frame_equal(on_dask, on_threads)
    np.testing.assert_array_equal(on_dask["prediction"], on_threads["prediction"])
    ran = {k: v - before.get(k, 0) for k, v in dask_task_counts(cluster).items()}
    assert ran.get("predict_chunk", 0) == 7  # 2,000 rows in chunks of 300
    runs = asyncio.run(task_runs_of(flow_run_id))
    assert [state for task, state in runs if task == "predict_chunk"] == ["Completed"] * 7
