"""The rollout state in the registry and the sticky arm assignment every replica computes alike."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from prefect_mlops.errors import RegistryError
from prefect_mlops.registry import version_by_alias
from prefect_mlops.rollout import (
    ROLLOUT_ALIAS,
    ROLLOUT_TAG,
    RolloutState,
    bucket,
    clear_rollout,
    parse_rollout,
    read_rollout,
    write_rollout,
)
from prefect_mlops.settings import Settings

MODEL = "rollout-demand"


@pytest.fixture
def client(settings: Settings, tmp_path) -> MlflowClient:
    """A registry with versions 1-2 of MODEL, v1 champion."""
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    client.create_registered_model(MODEL)
    run = client.create_run("0")
    for _ in range(2):
        client.create_model_version(MODEL, source=str(tmp_path), run_id=run.info.run_id)
    client.set_registered_model_alias(MODEL, "champion", "1")
    return client


def test_state_round_trips_through_one_tag_and_the_rollout_alias(client: MlflowClient) -> None:
    state = RolloutState(version="2", mode="canary", share=0.1, step="10%")
    write_rollout(client, MODEL, state)
    assert read_rollout(client, MODEL) == state
    assert version_by_alias(client, MODEL, ROLLOUT_ALIAS) == "2"
    assert clear_rollout(client, MODEL) == state
    assert read_rollout(client, MODEL) is None
    assert version_by_alias(client, MODEL, ROLLOUT_ALIAS) is None
    assert version_by_alias(client, MODEL, "champion") == "1"


def test_an_unknown_version_is_refused_before_anything_is_written(client: MlflowClient) -> None:
    with pytest.raises(Exception, match="9"):
        write_rollout(client, MODEL, RolloutState(version="9", mode="shadow"))
    assert ROLLOUT_TAG not in client.get_registered_model(MODEL).tags


def test_a_malformed_tag_is_an_error_naming_the_tag() -> None:
    with pytest.raises(RegistryError, match=ROLLOUT_TAG):
        parse_rollout({ROLLOUT_TAG: '{"version": "2", "mode": "blue"}'})
    with pytest.raises(RegistryError, match=ROLLOUT_TAG):
        parse_rollout({ROLLOUT_TAG: "not json"})
    assert parse_rollout({}) is None


def test_inconsistent_states_are_refused() -> None:
    with pytest.raises(ValueError, match="shadow"):
        RolloutState(version="2", mode="shadow", share=0.5)
    with pytest.raises(ValueError, match="key"):
        RolloutState(version="2", mode="ab", share=0.5)


def test_the_split_is_close_to_the_share_and_sticky_per_key() -> None:
    state = RolloutState(version="2", mode="ab", share=0.25, key="customer_id")
    arms = [state.serving_arm(f"c{i}", f"r{i}") for i in range(20_000)]
    assert arms.count("challenger") / len(arms) == pytest.approx(0.25, abs=0.015)
    assert all(state.serving_arm(f"c{i}", "other") == arms[i] for i in range(200))
    assert RolloutState(version="2", mode="canary", share=1.0).serving_arm(None, "r") == (
        "challenger"
    )
    assert RolloutState(version="2", mode="shadow").serving_arm("c1", "r") == "champion"


def test_the_bucket_is_a_fixed_function_of_key_and_version() -> None:
    """SHA-256, not Python's per-process salted hash: these values hold in every process, on
    every host, after every restart (tests/serving/test_rollout_processes.py checks services)."""
    values = [bucket(f"customer-{i}", "7") for i in range(3)]
    assert values == pytest.approx([0.57013029381, 0.0799135328, 0.770480518678], abs=1e-11)
    assert bucket("customer-0", "8") != values[0]  # a new rollout version reshuffles callers
