"""Rollouts in the service: the registry's state routes requests between champion and challenger.

Version 1 is the champion; version 2 predicts exactly SHIFT more (so every answer tells which
model computed it); version 3 refuses nulls in its numeric features (a challenger that raises on
requests the champion answers).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from prefect_mlops.prediction_log import read_model_log
from prefect_mlops.rollout import ROLLOUT_TAG, RolloutState, clear_rollout, write_rollout
from serving.app import create_app
from serving.metrics import ServiceMetrics
from serving.shadow import ShadowJob, ShadowScorer
from tests.serving.conftest import REGRESSOR, Store, make_settings, register, row

SHIFT = 1000.0
CHALLENGER, STRICT_CHALLENGER = "2", "3"


@pytest.fixture(scope="module")
def _rollout_template(_template_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serving template plus the two challengers, registered once for the module."""
    root = tmp_path_factory.mktemp("rollout-template")
    shutil.copy(_template_store / "mlflow.db", root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    store = Store(uri, _template_store, MlflowClient(tracking_uri=uri))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        assert register(store, REGRESSOR, shift=SHIFT, alias=None) == CHALLENGER
        assert register(store, REGRESSOR, strict=True, alias=None) == STRICT_CHALLENGER
    return root


@pytest.fixture
def store(
    _rollout_template: Path, _template_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Store:
    shutil.copy(_rollout_template / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return Store(uri, _template_store, MlflowClient(tracking_uri=uri))


@pytest.fixture
def serve(store: Store, tmp_path: Path) -> Iterator[Any]:
    """Start the real app on `store` with the rollout already written (as a restart would)."""
    apps: list[TestClient] = []

    def start(state: RolloutState | None = None, **overrides: Any) -> TestClient:
        if state is not None:
            write_rollout(store.client, REGRESSOR, state)
        client = TestClient(create_app(make_settings(store, tmp_path, **overrides)))
        apps.append(client)
        return client.__enter__()

    yield start
    for client in apps:
        client.__exit__(None, None, None)


def _ask(client: TestClient, record: dict | None = None, **headers: str) -> tuple[Any, dict]:
    response = client.post("/predict", json={"records": [record or row()]}, headers=headers)
    assert response.status_code == 200, response.text
    return response, response.json()


def _metric(client: TestClient, name: str, **labels: str) -> float:
    """One sample of `/metrics` (0 when absent)."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def _log(client: TestClient) -> Any:
    client.app.state.predictor.drain_shadow(60)  # a new shadow worker may still be loading
    client.app.state.log.flush()
    return read_model_log(REGRESSOR, directory=client.app.state.settings.log_dir).rows


def test_canary_share_is_roughly_respected_and_each_answer_and_row_names_its_arm(serve) -> None:
    client = serve(RolloutState(version=CHALLENGER, mode="canary", share=0.3, step="10%"))
    answers = [_ask(client, **{"x-request-id": f"canary-{i}"}) for i in range(300)]
    arms = [body["model_arm"] for _, body in answers]
    share = arms.count("challenger") / len(arms)
    assert 0.2 < share < 0.4, share
    base = next(b["predictions"][0] for _, b in answers if b["model_arm"] == "champion")
    for response, body in answers:
        version, arm = body["model_version"], body["model_arm"]
        assert response.headers["x-model-arm"] == arm
        assert response.headers["x-model-version"] == version
        assert (arm, version) in {("champion", "1"), ("challenger", CHALLENGER)}
        expected = base + (SHIFT if arm == "challenger" else 0.0)
        assert body["predictions"][0] == pytest.approx(expected, rel=1e-9)
    rows = _log(client)
    logged = rows.set_index("request_id")
    for _, body in answers:
        entry = logged.loc[body["request_id"]]
        assert (entry["arm"], entry["model_version"]) == (body["model_arm"], body["model_version"])
    assert set(rows["source"]) == {"online"}
    challenger_ok = _metric(
        client, "mlops_serve_arm_requests_total", arm="challenger", version="2", outcome="ok"
    )
    assert challenger_ok == arms.count("challenger")


def test_ab_assignment_is_sticky_per_key_from_header_or_column(serve) -> None:
    state = RolloutState(version=CHALLENGER, mode="ab", share=0.5, key="hr")
    client = serve(state)
    by_column = {
        hr: {_ask(client, row(hr=hr))[1]["model_arm"] for _ in range(3)} for hr in range(24)
    }
    assert all(len(arms) == 1 for arms in by_column.values())
    assert {next(iter(a)) for a in by_column.values()} == {"champion", "challenger"}
    for hr, arms in by_column.items():  # the arm is the state's pure function of the key
        assert arms == {state.serving_arm(str(hr), "ignored")}
    # the header names the caller, whatever the row holds
    header = {f"customer-{i}": state.serving_arm(f"customer-{i}", "x") for i in range(20)}
    for customer, arm in header.items():
        assert _ask(client, row(hr=3), **{"x-rollout-key": customer})[1]["model_arm"] == arm


def test_a_batch_of_many_keys_is_split_so_each_row_keeps_its_callers_arm(serve) -> None:
    state = RolloutState(version=CHALLENGER, mode="ab", share=0.5, key="hr")
    client = serve(state)
    hours = [0, 1, 2, 3, 4, 5, 6, 7, 5, 4, 3, 2, 1, 0]
    arms = [state.serving_arm(str(h), "ignored") for h in hours]
    assert len(set(arms)) == 2  # the batch spans both arms
    records = [row(hr=h) for h in hours]
    alone = [_ask(client, r)[1]["predictions"][0] for r in records]  # each caller by itself
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_arms"] == arms and body["model_arm"] == "mixed"
    assert body["model_versions"] == ["1" if a == "champion" else CHALLENGER for a in arms]
    assert response.headers["x-model-arm"] == "mixed"
    assert set(response.headers["x-model-version"].split(",")) == {"1", CHALLENGER}
    assert body["predictions"] == pytest.approx(alone, rel=1e-9)  # as if sent one by one
    rid = body["request_id"]
    rows = _log(client)
    logged = rows[rows["request_id"] == rid].sort_values("row_index")
    assert logged["row_index"].tolist() == list(range(len(hours)))
    assert logged["arm"].tolist() == arms
    assert logged["prediction"].to_numpy() == pytest.approx(alone, rel=1e-9)
    kinds = {"temp": "FP64", "hum": "FP64", "hr": "INT64", "season": "INT64", "weather": "BYTES"}
    tensors = [
        {"name": n, "shape": [len(records)], "datatype": t, "data": [r[n] for r in records]}
        for n, t in kinds.items()
    ]
    infer = client.post(f"/v2/models/{REGRESSOR}/infer", json={"inputs": tensors})
    assert infer.status_code == 200, infer.text
    assert infer.json()["parameters"]["model_arms"] == arms
    assert infer.json()["outputs"][0]["data"] == pytest.approx(alone, rel=1e-9)


def test_shadow_answers_never_reach_a_client_but_are_logged_as_shadow_rows(serve) -> None:
    client = serve(RolloutState(version=CHALLENGER, mode="shadow", step="shadow"))
    answers = [_ask(client, row(hr=i % 24))[1] for i in range(40)]
    assert {(a["model_arm"], a["model_version"]) for a in answers} == {("champion", "1")}
    rows = _log(client)
    online, shadow = rows[rows["source"] == "online"], rows[rows["source"] == "shadow"]
    assert set(online["arm"]) == {"champion"} and set(online["model_version"]) == {"1"}
    assert set(shadow["arm"]) == {"shadow"} and set(shadow["model_version"]) == {CHALLENGER}
    assert sorted(shadow["request_id"]) == sorted(a["request_id"] for a in answers)
    served = online.set_index("request_id")["prediction"]
    shadowed = shadow.set_index("request_id")["prediction"]
    assert (shadowed - served[shadowed.index]).to_numpy() == pytest.approx(SHIFT)
    labels = {"arm": "shadow", "version": CHALLENGER, "outcome": "ok"}
    assert _metric(client, "mlops_serve_arm_requests_total", **labels) == 40
    assert _metric(client, "mlops_serve_shadow_dropped_total") == 0
    metadata = client.get("/metadata").json()["rollout"]
    assert metadata["mode"] == "shadow" and metadata["challenger_version"] == CHALLENGER
    assert metadata["champion_version"] == "1" and metadata["challenger_loaded"] is True


def test_a_challenger_that_raises_is_answered_by_the_champion_and_counted(serve) -> None:
    client = serve(RolloutState(version=STRICT_CHALLENGER, mode="canary", share=1.0))
    _, refused = _ask(client, row(hum=None))  # the strict challenger refuses a null humidity
    _, taken = _ask(client, row())
    assert (refused["model_arm"], refused["model_version"]) == ("champion", "1")
    assert (taken["model_arm"], taken["model_version"]) == ("challenger", STRICT_CHALLENGER)
    errors = {"arm": "challenger", "version": STRICT_CHALLENGER, "outcome": "error"}
    assert _metric(client, "mlops_serve_arm_requests_total", **errors) == 1
    champion = {"arm": "champion", "version": "1", "outcome": "ok"}
    assert _metric(client, "mlops_serve_arm_requests_total", **champion) == 1
    assert _metric(client, "mlops_serve_arm_seconds_count", arm="champion", version="1") == 1


def test_a_cleared_rollout_unloads_the_challenger_and_sends_everything_to_the_champion(
    serve, store: Store
) -> None:
    client = serve(RolloutState(version=CHALLENGER, mode="canary", share=1.0))
    assert _ask(client)[1]["model_arm"] == "challenger"
    clear_rollout(store.client, REGRESSOR)
    assert client.post("/reload").json() == {"version": "1", "previous": "1", "changed": False}
    assert client.app.state.predictor.traffic().challenger is None
    assert client.get("/metadata").json()["rollout"] is None
    assert {_ask(client)[1]["model_arm"] for _ in range(10)} == {"champion"}
    assert "mlops_serve_rollout_share{" not in client.get("/metrics").text


def test_a_malformed_rollout_tag_is_reported_while_the_champion_serves(serve, store: Store) -> None:
    store.client.set_registered_model_tag(REGRESSOR, ROLLOUT_TAG, '{"mode": "canary"')
    client = serve()
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["ready"] is True
    assert ROLLOUT_TAG in health.json()["rollout_error"]
    metadata = client.get("/metadata").json()
    assert metadata["rollout"] is None and ROLLOUT_TAG in metadata["rollout_error"]
    assert _ask(client)[1]["model_version"] == "1"


def test_a_rollout_of_a_version_that_does_not_load_leaves_the_champion_serving(
    serve, store: Store
) -> None:
    state = RolloutState(version=CHALLENGER, mode="canary", share=1.0)
    store.client.set_registered_model_tag(REGRESSOR, ROLLOUT_TAG, state.model_dump_json())
    store.client.delete_model_version(REGRESSOR, CHALLENGER)
    client = serve()
    error = client.get("/health").json()["rollout_error"]
    assert "cannot load the rollout's version 2" in error
    assert _ask(client)[1]["model_arm"] == "champion"


def test_a_full_shadow_queue_drops_the_copy_and_counts_it_without_blocking(serve) -> None:
    client = serve(RolloutState(version=CHALLENGER, mode="shadow"))
    traffic = client.app.state.predictor.traffic()
    metrics = ServiceMetrics()
    scorer = ShadowScorer(client.app.state.settings, metrics, capacity=2)
    scorer.start()
    columns = {"temp": [1.0], "hum": [0.5], "hr": [3], "season": [1], "weather": ["mist"]}
    pid = None
    assert traffic.challenger_meters is not None
    scored_before = traffic.challenger_meters.ok._value.get()
    try:
        scorer.submit(ShadowJob(traffic, columns, "first", 0.0))
        scorer.drain(60)  # the worker started, loaded the challenger and scored it
        pid = scorer.worker_pid
        assert pid is not None and pid != os.getpid()
        os.kill(pid, signal.SIGSTOP)  # a stuck challenger
        scorer.submit(ShadowJob(traffic, columns, "taken", 0.0))
        deadline = time.monotonic() + 10
        while scorer._jobs and time.monotonic() < deadline:  # handed to the stopped worker
            time.sleep(0.01)
        started = time.perf_counter()
        for i in range(5):  # one queued, four dropped: submit returns at once every time
            scorer.submit(ShadowJob(traffic, columns, f"r{i}", 0.0))
        assert time.perf_counter() - started < 0.5
        assert metrics.shadow_dropped._value.get() == 4
        os.kill(pid, signal.SIGCONT)
        scorer.drain(30)
        meters = traffic.challenger_meters  # the service's, bound to the shadow arm
        assert meters is not None
        assert meters.ok._value.get() - scored_before == 3  # first, taken and the one queued
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        scorer.close()


def test_a_killed_shadow_worker_counts_its_copies_dropped_and_is_started_again(serve) -> None:
    client = serve(RolloutState(version=CHALLENGER, mode="shadow"))
    predictor = client.app.state.predictor
    deadline = time.monotonic() + 60  # the worker starts and loads v2 with shadow mode
    while not client.get("/health").json()["rollout"]["shadow_worker"]["ready"]:
        assert time.monotonic() < deadline, client.get("/health").json()
        time.sleep(0.1)
    worker = client.get("/health").json()["rollout"]["shadow_worker"]
    assert worker["version"] == CHALLENGER and worker["error"] is None
    _ask(client, **{"x-request-id": "before-kill"})
    predictor.drain_shadow(60)
    first = predictor._shadow.worker_pid
    assert first is not None and first != os.getpid() and first == worker["pid"]
    os.kill(first, signal.SIGSTOP)
    _ask(client, **{"x-request-id": "in-flight"})
    deadline = time.monotonic() + 10
    while predictor._shadow._jobs and time.monotonic() < deadline:  # handed to the worker
        time.sleep(0.01)
    os.kill(first, signal.SIGKILL)
    wait_until = time.monotonic() + 10
    while _metric(client, "mlops_serve_shadow_dropped_total") < 1 and time.monotonic() < wait_until:
        time.sleep(0.05)
    assert _metric(client, "mlops_serve_shadow_dropped_total") == 1
    time.sleep(1.1)  # a dead worker is started again at most once a second
    _ask(client, **{"x-request-id": "after-kill"})
    predictor.drain_shadow(60)
    second = predictor._shadow.worker_pid
    assert second is not None and second != first
    shadow_ids = {r for r, a in zip(*_ids_and_arms(client), strict=True) if a == "shadow"}
    assert {"before-kill", "after-kill"} <= shadow_ids
    assert "in-flight" not in shadow_ids  # dropped, and counted
    assert _metric(client, "mlops_serve_prediction_log_lost_rows_total", table="predictions") == 0


def _ids_and_arms(client: TestClient) -> tuple[list[str], list[str]]:
    rows = _log(client)
    return list(rows["request_id"]), list(rows["arm"])
