"""Bearer-token auth: every route but liveness; a 401 says nothing more."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prefect.blocks.system import Secret

from prefect_mlops.errors import ConfigError
from serving.app import create_app
from tests.serving.conftest import make_settings, row

TOKEN = "s3cret-token"


@pytest.fixture
def secured(store, tmp_path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(store, tmp_path, token=TOKEN))) as client:
        yield client


def test_liveness_needs_no_token(secured: TestClient) -> None:
    assert secured.get("/health/live").status_code == 200
    assert secured.get("/v2/health/live").status_code == 200


def test_missing_token_gets_401_revealing_nothing(secured: TestClient) -> None:
    response = secured.post("/predict", json={"records": [row()]})
    assert response.status_code == 401
    assert response.json() == {"detail": "unauthorized"}


def test_wrong_token_gets_the_same_401(secured: TestClient) -> None:
    headers = {"Authorization": "Bearer nope"}
    response = secured.post("/predict", json={"records": [row()]}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "unauthorized"}


def test_invalid_input_without_token_gets_401_not_400(secured: TestClient) -> None:
    assert secured.post("/predict", content=b"{not json").status_code == 401


def test_valid_token_predicts(secured: TestClient) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = secured.post("/predict", json={"records": [row()]}, headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health"),
        ("GET", "/metadata"),
        ("GET", "/metrics"),
        ("GET", "/v2/health/ready"),
        ("GET", "/v2/models/demand"),
        ("POST", "/invocations"),
        ("POST", "/v2/models/demand/infer"),
        ("POST", "/feedback"),
        ("POST", "/reload"),
    ],
)
def test_every_other_route_requires_the_token(secured: TestClient, method: str, path: str) -> None:
    assert secured.request(method, path).status_code == 401


def test_token_from_a_prefect_secret_block(store, tmp_path) -> None:
    block = f"serve-token-{uuid.uuid4().hex[:8]}"
    Secret(value="from-the-block").save(block)
    settings = make_settings(store, tmp_path, token_secret_block=block)
    with TestClient(create_app(settings)) as client:
        without = client.post("/predict", json={"records": [row()]})
        wrong = client.post(
            "/predict", json={"records": [row()]}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with_token = client.post(
            "/predict",
            json={"records": [row()]},
            headers={"Authorization": "Bearer from-the-block"},
        )
    assert (without.status_code, wrong.status_code, with_token.status_code) == (401, 401, 200)


def test_missing_secret_block_stops_start_up_naming_it(store, tmp_path) -> None:
    settings = make_settings(store, tmp_path, token_secret_block="no-such-serve-token")
    with (
        pytest.raises(ConfigError, match=r"TOKEN_SECRET_BLOCK.*'no-such-serve-token'"),
        TestClient(create_app(settings)),
    ):
        pass
