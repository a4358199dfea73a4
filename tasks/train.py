"""Train tasks: plan the candidates, cross-validate each as a task, refit the best."""

from __future__ import annotations

import time

from prefect import task, unmapped
from sklearn.pipeline import Pipeline

from prefect_mlops.artifact_store import local_file
from prefect_mlops.config import PipelineConfig
from prefect_mlops.estimators import (
    build_model,
    candidate_waves,
    cross_validate_spec,
    default_parallel_candidates,
    expand_candidates,
    select_best,
)
from prefect_mlops.io import read_parquet
from prefect_mlops.results import CandidateScore, CandidateSpec, FeatureSchema, SplitRefs
from prefect_mlops.runtime import cpu_share
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import log_candidate_run, mlflow_client
from tasks.policies import RELEASES_MEMORY, retry_transient
from tasks.runners import current_dask_slots


@task(task_run_name="pick the best candidate")
def pick_best(scores: list[CandidateScore]) -> CandidateScore:
    """Choose the best cross-validated candidate."""
    return select_best(scores)


@task(task_run_name="plan candidates of {config.name}")
def plan_candidates(config: PipelineConfig) -> list[CandidateSpec]:
    """Expand the config's search spaces into the candidate configurations to cross-validate."""
    return expand_candidates(config)


def cross_validate_candidates(
    specs: list[CandidateSpec],
    split: SplitRefs,
    schema: FeatureSchema,
    config: PipelineConfig,
    parent_run_id: str,
    settings: Settings,
) -> list[CandidateScore]:
    """Fan the candidates out as Prefect tasks, `tuning.parallel_candidates` at a time.

    The config bounds them (and their memory), not a Prefect tag concurrency limit: a tagged task
    waits on a server round trip for its slot before it starts (seconds when the server is busy
    with the run's events), and the deployment's own concurrency limit already keeps training
    runs apart.
    """
    wanted = config.tuning.parallel_candidates or default_parallel_candidates(split.train_rows)
    on_dask = current_dask_slots() is not None
    if on_dask and not config.tuning.parallel_candidates:
        wanted = len(specs)  # all to the cluster: its workers' slots bound them, whatever the rows
    parallel = max(1, min(wanted, len(specs)))
    args = (split, schema, config, parent_run_id, settings, cpu_share(parallel))
    if parallel == 1 and not on_dask:
        # One at a time on the flow's own thread, like the refit that follows: OpenMP keeps one
        # team of threads per calling thread, and once it manages more threads than there are
        # cores (a team per task-runner thread) it stops spin-waiting, which made the refit of
        # a gradient-boosting model 25% slower.
        return [score_candidate(spec, *args) for spec in specs]
    scores: list[CandidateScore] = []
    for wave in candidate_waves(specs, parallel):
        futures = score_candidate.map(wave, *(unmapped(a) for a in args))
        scores.extend(futures.result())
    return scores


@task(
    retries=1,
    retry_delay_seconds=[2],
    retry_condition_fn=retry_transient,
    **RELEASES_MEMORY,
    task_run_name="cv {spec.title}",
)
def score_candidate(
    spec: CandidateSpec,
    split: SplitRefs,
    schema: FeatureSchema,
    config: PipelineConfig,
    parent_run_id: str,
    settings: Settings,
    threads: int = 1,
) -> CandidateScore:
    """Cross-validate one candidate and record it as a nested MLflow run."""
    started_ms = int(time.time() * 1000)  # the nested run spans the read and the folds
    train = read_parquet(local_file(split.train_uri), columns=schema.columns())
    scores, seconds = cross_validate_spec(spec, train, schema, config, threads)
    metric = config.gate.primary_metric
    client = mlflow_client(settings)
    run_id = log_candidate_run(client, parent_run_id, spec, metric, scores, started_ms, seconds)
    return CandidateScore(
        spec=spec,
        metric=metric,
        cv_mean=float(scores.mean()),
        cv_std=float(scores.std()),
        fit_seconds=seconds,
        run_id=run_id,
    )


@task(**RELEASES_MEMORY, task_run_name="refit {spec.title}")
def fit_model(spec: CandidateSpec, split: SplitRefs, schema: FeatureSchema, seed: int) -> Pipeline:
    """Refit the chosen candidate on the whole training part."""
    train = read_parquet(local_file(split.train_uri), columns=schema.columns())
    model = build_model(spec, schema, seed)
    model.fit(train[schema.features], train[schema.target])
    return model
