"""Hot swap: the service follows the champion alias without a restart or a failed request."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.serving.conftest import REGRESSOR, make_settings, register, row

SHIFT = 1000.0  # version 2 predicts exactly this much more than version 1 (Ridge intercept)


def _predict(client: TestClient) -> tuple[int, str | None, float | None]:
    response = client.post("/predict", json={"records": [row()]})
    if response.status_code != 200:
        return response.status_code, None, None
    body = response.json()
    return 200, body["model_version"], body["predictions"][0]


def _wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)


def test_reload_endpoint_switches_to_the_new_champion(store, tmp_path) -> None:
    version = register(store, REGRESSOR, shift=SHIFT, alias=None)
    with TestClient(create_app(make_settings(store, tmp_path))) as client:
        store.client.set_registered_model_alias(REGRESSOR, "champion", version)
        outcome = client.post("/reload").json()
        _, served_by, _ = _predict(client)
    assert outcome == {"version": version, "previous": "1", "changed": True}
    assert served_by == version


def test_reload_without_an_alias_move_changes_nothing(client: TestClient) -> None:
    assert client.post("/reload").json() == {"version": "1", "previous": "1", "changed": False}


def test_alias_move_under_concurrent_requests_fails_none_and_labels_each_answer(
    store, tmp_path
) -> None:
    version = register(store, REGRESSOR, shift=SHIFT, alias=None)
    settings = make_settings(store, tmp_path, poll_seconds=0.1)
    answers: list[tuple[int, str | None, float | None]] = []
    stop = threading.Event()
    with TestClient(create_app(settings)) as client:
        _, _, baseline = _predict(client)

        def keep_asking() -> None:
            while not stop.is_set():
                answers.append(_predict(client))

        workers = [threading.Thread(target=keep_asking) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            _wait_for(lambda: len(answers) >= 20)
            store.client.set_registered_model_alias(REGRESSOR, "champion", version)
            _wait_for(lambda: any(v == version for _, v, _ in answers))
            seen = len(answers)
            _wait_for(lambda: len(answers) >= seen + 20)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
    assert [status for status, _, _ in answers if status != 200] == []
    assert {v for _, v, _ in answers} == {"1", version}
    expected = {"1": baseline, version: baseline + SHIFT}
    for _, served_by, prediction in answers:
        assert prediction == pytest.approx(expected[served_by], rel=1e-9)
