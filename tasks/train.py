"""Train: expand the search space into candidates, cross-validate each, fit the best."""

from __future__ import annotations

import inspect
import time

import numpy as np
from mlflow.entities import Metric, Param
from prefect import task, unmapped
from sklearn import ensemble, linear_model
from sklearn.base import BaseEstimator
from sklearn.model_selection import (
    KFold,
    ParameterGrid,
    StratifiedKFold,
    TimeSeriesSplit,
    cross_validate,
)
from sklearn.pipeline import Pipeline

from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.errors import ConfigError
from prefect_mlops.io import read_parquet
from prefect_mlops.metrics import cv_score_to_metric, higher_is_better, scorer_name
from prefect_mlops.results import CandidateScore, CandidateSpec, FeatureSchema, SplitRefs
from prefect_mlops.runtime import cpu_count, cpu_share, openmp_threads
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import mlflow_client
from tasks.features import build_preprocessor
from tasks.policies import RELEASES_MEMORY, retry_transient

ESTIMATORS: dict[TaskType, dict[str, type[BaseEstimator]]] = {
    TaskType.regression: {
        "linear": linear_model.Ridge,
        "elastic_net": linear_model.ElasticNet,
        "random_forest": ensemble.RandomForestRegressor,
        "extra_trees": ensemble.ExtraTreesRegressor,
        "hist_gradient_boosting": ensemble.HistGradientBoostingRegressor,
    },
    TaskType.classification: {
        "logistic_regression": linear_model.LogisticRegression,
        "random_forest": ensemble.RandomForestClassifier,
        "extra_trees": ensemble.ExtraTreesClassifier,
        "hist_gradient_boosting": ensemble.HistGradientBoostingClassifier,
    },
}


def make_estimator(task_type: TaskType, name: str, params: dict, seed: int) -> BaseEstimator:
    """Instantiate a registered estimator family with its parameters and the run's seed."""
    families = ESTIMATORS[task_type]
    if name not in families:
        raise ConfigError(f"unknown {task_type} estimator {name!r}; choose from {sorted(families)}")
    cls = families[name]
    accepted = inspect.signature(cls).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"estimator {name!r} has no parameters {unknown}")
    defaults = {"random_state": seed} if "random_state" in accepted else {}
    if name == "logistic_regression":
        defaults["max_iter"] = 2000
    return cls(**{**defaults, **params})


def build_model(spec: CandidateSpec, schema: FeatureSchema, seed: int) -> Pipeline:
    """The full pipeline of one candidate: preprocessing then estimator."""
    estimator = make_estimator(TaskType(schema.task), spec.estimator, spec.params, seed)
    return Pipeline([("preprocess", build_preprocessor(schema)), ("model", estimator)])


def expand_candidates(config: PipelineConfig) -> list[CandidateSpec]:
    """Every candidate configuration to try: the grid, or a seeded sample of it when too large."""
    specs: list[CandidateSpec] = []
    rng = np.random.default_rng(config.seed)
    for candidate in config.candidates:
        grid = list(ParameterGrid(candidate.search_space or {}))
        limit = config.tuning.max_configs_per_candidate
        if len(grid) > limit:
            grid = [grid[i] for i in sorted(rng.choice(len(grid), size=limit, replace=False))]
        for index, point in enumerate(grid):
            params = {**candidate.params, **point}
            make_estimator(config.task, candidate.estimator, params, config.seed)  # fail fast
            specs.append(
                CandidateSpec(
                    name=candidate.name, estimator=candidate.estimator, params=params, index=index
                )
            )
    return specs


def cv_splitter(config: PipelineConfig) -> KFold | StratifiedKFold | TimeSeriesSplit:
    """Cross-validation folds that respect the split strategy (no peeking into the future)."""
    folds = config.tuning.cv_folds
    if config.split.strategy == "time":
        return TimeSeriesSplit(n_splits=folds)
    if config.split.strategy == "stratified":
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    return KFold(n_splits=folds, shuffle=True, random_state=config.seed)


def select_best(scores: list[CandidateScore]) -> CandidateScore:
    """The candidate with the best mean CV score (first listed wins a tie)."""
    sign = 1.0 if higher_is_better(scores[0].metric) else -1.0
    return max(scores, key=lambda s: (sign * s.cv_mean, -scores.index(s)))


@task
def pick_best(scores: list[CandidateScore]) -> CandidateScore:
    """Choose the best cross-validated candidate."""
    return select_best(scores)


@task
def plan_candidates(config: PipelineConfig) -> list[CandidateSpec]:
    """Expand the configured search spaces into the list of candidate configurations."""
    return expand_candidates(config)


def candidate_waves(specs: list[CandidateSpec], parallel: int) -> list[list[CandidateSpec]]:
    """The candidates in groups of at most `parallel`, in their planned order."""
    return [specs[start : start + parallel] for start in range(0, len(specs), parallel)]


# From this many training rows on, one candidate's fit keeps every core busy by itself (OpenMP
# threads, or n_jobs), and candidates side by side on worker threads only contend: measured on the
# benchmark, one at a time is 15% faster at 800k training rows and 5% slower at 80k.
ONE_AT_A_TIME_ROWS = 250_000


def default_parallel_candidates(train_rows: int) -> int:
    """Candidates cross-validated at once when the config does not say: one per core, or one
    at a time on large data."""
    return 1 if train_rows >= ONE_AT_A_TIME_ROWS else cpu_count()


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
    parallel = max(1, min(wanted, len(specs)))
    threads = cpu_share(parallel)
    args = (split, schema, config, parent_run_id, settings, threads)
    if parallel == 1:
        # One at a time on the flow's own thread, like the refit that follows: OpenMP keeps one
        # team of threads per calling thread, and once it manages more threads than there are
        # cores (a team per task-runner thread) it stops spin-waiting, which made the refit of
        # a gradient-boosting model 25% slower.
        return [score_candidate(spec, *args) for spec in specs]
    scores: list[CandidateScore] = []
    for wave in candidate_waves(specs, parallel):
        futures = score_candidate.map(
            wave,
            unmapped(split),
            unmapped(schema),
            unmapped(config),
            unmapped(parent_run_id),
            unmapped(settings),
            unmapped(threads),
        )
        scores.extend(futures.result())
    return scores


@task(
    retries=1,
    retry_delay_seconds=[2],
    retry_condition_fn=retry_transient,
    **RELEASES_MEMORY,
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
    train = read_parquet(split.train_uri, columns=schema.columns())
    metric = config.gate.primary_metric
    started = time.perf_counter()
    with openmp_threads(threads):
        cv = cross_validate(
            build_model(spec, schema, config.seed),
            train[schema.features],
            train[schema.target],
            cv=cv_splitter(config),
            scoring=scorer_name(metric),
            error_score="raise",
        )
    scores = np.array([cv_score_to_metric(metric, s) for s in cv["test_score"]])
    client = mlflow_client(settings)
    parent = client.get_run(parent_run_id)
    run = client.create_run(
        parent.info.experiment_id,
        run_name=spec.label,
        tags={"mlflow.parentRunId": parent_run_id, "candidate": spec.name},
    )
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        params=[Param(k, str(v)) for k, v in {"estimator": spec.estimator, **spec.params}.items()],
        metrics=[
            Metric(f"cv_{metric}_mean", float(scores.mean()), now, 0),
            Metric(f"cv_{metric}_std", float(scores.std()), now, 0),
        ],
    )
    client.set_terminated(run.info.run_id)
    return CandidateScore(
        spec=spec,
        metric=metric,
        cv_mean=float(scores.mean()),
        cv_std=float(scores.std()),
        fit_seconds=time.perf_counter() - started,
        run_id=run.info.run_id,
    )


@task(**RELEASES_MEMORY)
def fit_model(spec: CandidateSpec, split: SplitRefs, schema: FeatureSchema, seed: int) -> Pipeline:
    """Refit the chosen candidate on the whole training part."""
    train = read_parquet(split.train_uri, columns=schema.columns())
    model = build_model(spec, schema, seed)
    model.fit(train[schema.features], train[schema.target])
    return model
