"""The champion's move in the core: journalled, completed after a crash, re-decided when raced."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from prefect_mlops.registry import (
    CHAMPION,
    CHAMPION_MOVE_TAG,
    PREVIOUS_CHAMPION,
    complete_champion_move,
    promote_if_still_better,
    promote_version,
    unlocked,
    version_by_alias,
)
from prefect_mlops.settings import Settings

MODEL = "race-demand"


@pytest.fixture
def client(settings: Settings, tmp_path) -> MlflowClient:
    """A registry with versions 1-3 of MODEL and v1 champion."""
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    client.create_registered_model(MODEL)
    run = client.create_run("0")
    for _ in range(3):
        client.create_model_version(MODEL, source=str(tmp_path), run_id=run.info.run_id)
    client.set_registered_model_alias(MODEL, CHAMPION, "1")
    return client


def test_a_move_cut_short_after_previous_champion_is_completed(client: MlflowClient) -> None:
    # What a SIGKILL between the two alias writes leaves: the journal, previous-champion moved.
    client.set_registered_model_tag(MODEL, CHAMPION_MOVE_TAG, json.dumps({"from": "1", "to": "2"}))
    client.set_registered_model_alias(MODEL, PREVIOUS_CHAMPION, "1")

    assert complete_champion_move(client, MODEL) == "2"

    assert version_by_alias(client, MODEL, CHAMPION) == "2"
    assert version_by_alias(client, MODEL, PREVIOUS_CHAMPION) == "1"
    assert CHAMPION_MOVE_TAG not in client.get_registered_model(MODEL).tags


def test_a_finished_move_leaves_no_journal(client: MlflowClient) -> None:
    promote_version(client, MODEL, "2", "manual", unlocked)
    assert CHAMPION_MOVE_TAG not in client.get_registered_model(MODEL).tags
    assert complete_champion_move(client, MODEL) is None


def test_a_challenger_decided_against_an_old_champion_is_decided_again(
    client: MlflowClient,
) -> None:
    promote_version(client, MODEL, "2", "another run won first", unlocked)
    seen: list[str | None] = []

    def redecide(current: str | None) -> bool:
        seen.append(current)
        return False  # an identical model does not beat the new champion

    moved = promote_if_still_better(client, MODEL, "3", "1", redecide, unlocked)

    assert not moved
    assert seen == ["2"]
    assert version_by_alias(client, MODEL, CHAMPION) == "2"
    assert version_by_alias(client, MODEL, PREVIOUS_CHAMPION) == "1"  # the true rollback target


def test_a_challenger_decided_against_the_current_champion_moves_it(client: MlflowClient) -> None:
    moved = promote_if_still_better(client, MODEL, "3", "1", lambda current: False, unlocked)
    assert moved
    assert version_by_alias(client, MODEL, CHAMPION) == "3"
    assert version_by_alias(client, MODEL, PREVIOUS_CHAMPION) == "1"
