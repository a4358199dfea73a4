"""Estimators and candidates: the catalogue of model families, the search plan, CV folds."""

from __future__ import annotations

import inspect
import time
from typing import Any

import numpy as np
import pandas as pd
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
from prefect_mlops.dask_runner import fold_backend
from prefect_mlops.errors import ConfigError
from prefect_mlops.features import build_preprocessor
from prefect_mlops.metrics import (
    cv_score_to_metric,
    higher_is_better,
    scorer,
    training_positive_label,
)
from prefect_mlops.results import CandidateScore, CandidateSpec, FeatureSchema
from prefect_mlops.runtime import cpu_count, openmp_threads

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


def cross_validate_spec(
    spec: CandidateSpec,
    train: pd.DataFrame,
    schema: FeatureSchema,
    config: PipelineConfig,
    threads: int,
) -> tuple[np.ndarray, float]:
    """Per-fold scores of one candidate on the training part, and the seconds they took."""
    metric = config.gate.primary_metric
    positive = training_positive_label(config.task, train[schema.target], config.positive_label)
    started = time.perf_counter()
    with openmp_threads(threads), fold_backend() as n_jobs:
        cv = cross_validate(
            build_model(spec, schema, config.seed),
            train[schema.features],
            train[schema.target],
            cv=cv_splitter(config),
            scoring=scorer(metric, positive),
            error_score="raise",
            n_jobs=n_jobs,
        )
    scores = np.array([cv_score_to_metric(metric, s) for s in cv["test_score"]])
    return scores, time.perf_counter() - started


def check_candidates(config: PipelineConfig) -> list[str]:
    """Every problem with the config's candidates (unknown families or parameters), at once."""
    problems = []
    for candidate in config.candidates:
        grid: list[dict[str, Any]] = list(ParameterGrid(candidate.search_space or {})) or [{}]
        for point in grid:
            try:
                make_estimator(
                    config.task, candidate.estimator, {**candidate.params, **point}, config.seed
                )
            except (ConfigError, TypeError, ValueError) as exc:
                problems.append(f"candidates[{candidate.name}]: {exc}")
                break
    return problems
