"""Candidate fan-out: waves of parallel candidates, each on its share of the cores."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from prefect import flow

from prefect_mlops.config import PipelineConfig, load_config
from prefect_mlops.errors import ConfigError
from prefect_mlops.estimators import (
    ONE_AT_A_TIME_ROWS,
    candidate_waves,
    default_parallel_candidates,
    expand_candidates,
)
from prefect_mlops.features import infer_schema
from prefect_mlops.results import CandidateScore, CandidateSpec
from prefect_mlops.runtime import cpu_count
from prefect_mlops.settings import Settings
from tasks.ingest import snapshot_source
from tasks.split import split_snapshot
from tasks.train import cross_validate_candidates
from tests.conftest import fast_config_dict, write_config


def spec(index: int) -> CandidateSpec:
    return CandidateSpec(name=f"c{index}", estimator="linear", params={}, index=index)


def test_waves_keep_the_planned_order_and_bound_each_group() -> None:
    specs = [spec(i) for i in range(5)]
    waves = candidate_waves(specs, 2)
    assert [[s.index for s in wave] for wave in waves] == [[0, 1], [2, 3], [4]]
    assert candidate_waves(specs, 1) == [[s] for s in specs]
    assert candidate_waves(specs, 9) == [specs]


def test_large_training_sets_run_candidates_one_at_a_time_by_default() -> None:
    assert default_parallel_candidates(ONE_AT_A_TIME_ROWS) == 1
    assert default_parallel_candidates(ONE_AT_A_TIME_ROWS - 1) == cpu_count()


def test_parallel_candidates_must_be_positive(tmp_path: Path) -> None:
    raw = fast_config_dict()
    raw["tuning"]["parallel_candidates"] = 0
    with pytest.raises(ConfigError, match="parallel_candidates"):
        load_config(write_config(tmp_path / "bad.yaml", raw))


def scores_with(parallel: int, tmp_path: Path, settings: Settings) -> list[CandidateScore]:
    raw = fast_config_dict()
    raw["tuning"]["parallel_candidates"] = parallel
    config: PipelineConfig = load_config(write_config(tmp_path / f"p{parallel}.yaml", raw))

    @flow
    def fan_out() -> list[CandidateScore]:
        snapshot = snapshot_source(config.source, settings.snapshot_dir)
        split = split_snapshot(snapshot, config, settings)
        schema = infer_schema(pd.read_parquet(snapshot.uri), config)
        client = MlflowClient(settings.tracking_uri)
        experiment = client.create_experiment(f"fan-out-{parallel}")
        parent = client.create_run(experiment).info.run_id
        return cross_validate_candidates(
            expand_candidates(config), split, schema, config, parent, settings
        )

    return fan_out()


def test_one_at_a_time_gives_the_same_scores_as_side_by_side(
    tmp_path: Path, settings: Settings
) -> None:
    sequential = scores_with(1, tmp_path, settings)
    side_by_side = scores_with(2, tmp_path, settings)
    assert [s.spec.name for s in sequential] == ["ridge", "hist_gradient_boosting"]
    assert [s.spec for s in sequential] == [s.spec for s in side_by_side]
    assert [s.cv_mean for s in sequential] == pytest.approx([s.cv_mean for s in side_by_side])
    assert len({s.run_id for s in [*sequential, *side_by_side]}) == 4  # a nested run each
