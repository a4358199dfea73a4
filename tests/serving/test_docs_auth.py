"""The documentation routes sit behind the token; an open service says so once at start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.serving.conftest import Store, make_settings

TOKEN = "docs-token"
DOCS = ["/docs", "/redoc", "/openapi.json"]


@pytest.mark.parametrize("path", DOCS)
def test_docs_need_the_token(store: Store, tmp_path: Path, path: str) -> None:
    with TestClient(create_app(make_settings(store, tmp_path, token=TOKEN))) as client:
        anonymous = client.get(path)
        wrong = client.get(path, headers={"Authorization": "Bearer nope"})
        allowed = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert "demand" not in anonymous.text
    assert allowed.status_code == 200


def test_the_openapi_document_lists_the_routes_but_not_the_docs(
    store: Store, tmp_path: Path
) -> None:
    with TestClient(create_app(make_settings(store, tmp_path, token=TOKEN))) as client:
        spec = client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert "/predict" in spec["paths"] and "/docs" not in spec["paths"]


@pytest.mark.parametrize("path", DOCS)
def test_docs_can_be_switched_off(store: Store, tmp_path: Path, path: str) -> None:
    with TestClient(create_app(make_settings(store, tmp_path, docs=False))) as client:
        assert client.get(path).status_code == 404


def test_an_open_service_warns_once_at_start(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(store, tmp_path))
    with caplog.at_level(logging.WARNING, logger="serving.app"), TestClient(app) as client:
        client.get("/health")
        client.get("/docs")
    warnings = [r for r in caplog.records if "without authentication" in r.getMessage()]
    assert len(warnings) == 1


def test_a_secured_service_does_not_warn(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(store, tmp_path, token=TOKEN))
    with caplog.at_level(logging.WARNING, logger="serving.app"), TestClient(app):
        pass
    assert not [r for r in caplog.records if "without authentication" in r.getMessage()]
