"""/docs and /redoc load only self-hosted assets; the OpenAPI document shows the served model's
own example (which the model accepts) and /feedback's body schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.docs import ASSETS, STATIC_DIR
from tests.serving.conftest import Store, make_settings

TOKEN = "docs-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def secured(store: Store, tmp_path: Path) -> TestClient:
    with TestClient(create_app(make_settings(store, tmp_path, token=TOKEN))) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_pages_reference_no_other_host(secured: TestClient, page: str) -> None:
    html = secured.get(page, headers=AUTH).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(
        r"""url: ?['"]([^'"]+)['"]""", html
    )
    assert urls, html
    assert not [u for u in urls if "//" in u], urls
    assert "googleapis" not in html and "cdn.jsdelivr" not in html


@pytest.mark.parametrize("key", sorted(ASSETS))
def test_every_asset_is_served_behind_the_token(secured: TestClient, key: str) -> None:
    url = f"/docs/static/{key}"
    assert secured.get(url).status_code == 401
    answer = secured.get(url, headers=AUTH)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(ASSETS[key])
    assert answer.content == (STATIC_DIR / key).read_bytes()


@pytest.mark.parametrize("key", ["swagger-ui/LICENSE", "redoc/..%2Fdocs.py", "x/y.js"])
def test_files_not_listed_are_not_served(secured: TestClient, key: str) -> None:
    assert secured.get(f"/docs/static/{key}", headers=AUTH).status_code == 404


def test_vendored_assets_keep_their_licenses() -> None:
    for folder in ("swagger-ui", "redoc"):
        assert (
            "MIT" in (STATIC_DIR / folder / "LICENSE").read_text()
            or "Apache" in (STATIC_DIR / folder / "LICENSE").read_text()
        )


def test_the_predict_example_is_the_models_own_and_is_accepted(secured: TestClient) -> None:
    spec = secured.get("/openapi.json", headers=AUTH).json()
    media = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    example = media["example"]
    assert set(example["records"][0]) == {"temp", "hum", "hr", "season", "weather"}
    assert media["schema"]["properties"]["records"]["items"]["properties"].keys() == {
        "temp",
        "hum",
        "hr",
        "season",
        "weather",
    }
    answer = secured.post("/predict", json=example, headers=AUTH)
    assert answer.status_code == 200, answer.text
    invocations = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert (
        secured.post(
            "/invocations", json=invocations["application/json"]["example"], headers=AUTH
        ).status_code
        == 200
    )


def test_feedback_documents_its_body(secured: TestClient) -> None:
    spec = secured.get("/openapi.json", headers=AUTH).json()
    media = spec["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]
    assert {"request_id", "label", "row_index"} <= media["schema"]["properties"].keys()
    assert media["schema"]["required"] == ["request_id", "label"]
    request_id = secured.post(
        "/predict",
        json=spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
            "example"
        ],
        headers=AUTH,
    ).json()["request_id"]
    answer = secured.post(
        "/feedback", json={**media["example"], "request_id": request_id}, headers=AUTH
    )
    assert answer.status_code == 202, answer.text
