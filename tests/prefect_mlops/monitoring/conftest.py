"""Small frames and configs shared by the monitoring core's unit tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.config import PipelineConfig, parse_config
from prefect_mlops.monitoring import PREDICTION
from tests.conftest import fast_config_dict


@pytest.fixture
def config() -> PipelineConfig:
    """The bikeshare pipeline (regression on `bikers`, time split on `timestamp`)."""
    return parse_config(fast_config_dict())


@pytest.fixture
def small_config() -> PipelineConfig:
    """A regression on `y` from two numbers and one category, split at random."""
    return parse_config(
        fast_config_dict(
            target="y",
            exclude=[],
            categorical_features=["kind"],
            datetime_features=[],
            split={"strategy": "random", "test_size": 0.2},
            slices=[],
        )
    )


def small_frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """`steady` never moves; `moving` and the target move by `shift`; predictions follow `y`."""
    rng = np.random.default_rng(seed)
    moving = rng.normal(shift, 1.0, rows)
    frame = pd.DataFrame(
        {
            "steady": rng.normal(0.0, 1.0, rows),
            "moving": moving,
            "kind": np.array(["a", "b"])[rng.choice(2, rows)],
        }
    )
    frame["y"] = 2.0 * moving + rng.normal(0.0, 0.1, rows)
    frame[PREDICTION] = 2.0 * moving
    return frame


def classification_config(**overrides: object) -> PipelineConfig:
    """A classifier of `label` from `x` and `kind`, split at random."""
    raw = fast_config_dict(
        task="classification",
        target="label",
        exclude=[],
        categorical_features=["kind"],
        datetime_features=[],
        split={"strategy": "random", "test_size": 0.2},
        slices=[],
        gate={"primary_metric": "pr_auc", "thresholds": {}},
        candidates=[{"name": "logreg", "estimator": "logistic_regression"}],
    )
    return parse_config({**raw, **overrides})


def labelled_frame(
    rows: int, seed: int, classes: list[object], share: float = 0.05
) -> pd.DataFrame:
    """`classes[1]` on about `share` of the rows (where `x` is high); predictions miss some."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, rows)
    cut = np.quantile(x, 1 - share)
    values = np.array(classes, dtype=object if isinstance(classes[0], str) else None)
    frame = pd.DataFrame({"x": x, "kind": np.array(["a", "b"])[rng.choice(2, rows)]})
    frame["label"] = values[(x > cut).astype(int)]
    frame[PREDICTION] = values[(x + rng.normal(0.0, 0.3, rows) > cut).astype(int)]
    return frame
