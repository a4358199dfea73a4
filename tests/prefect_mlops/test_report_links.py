"""report_url names a report by its URL on the report server, which serves it as a page."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from prefect_mlops.report_links import DATA_DOCS_SITE_DIR, report_link, report_url
from prefect_mlops.report_server import create_app
from prefect_mlops.settings import Settings

BASE = "http://127.0.0.1:8090"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        artifact_root=tmp_path / "artifacts", gx_root=tmp_path / "gx", reports_url=BASE + "/"
    )


@pytest.fixture
def report(settings: Settings) -> Path:
    path = settings.monitoring_dir / "demand 2026-12-01" / "report.html"
    path.parent.mkdir(parents=True)
    path.write_text("<!doctype html><title>drift</title><h1>Drift of demand</h1>")
    return path


def test_a_monitoring_report_gets_its_url(settings: Settings, report: Path) -> None:
    assert report_url(report, settings) == f"{BASE}/monitoring/demand%202026-12-01/report.html"


def test_a_data_docs_file_url_gets_its_url(settings: Settings) -> None:
    index = settings.gx_root / DATA_DOCS_SITE_DIR / "index.html"
    assert report_url(index.as_uri(), settings) == f"{BASE}/data-docs/index.html"


def test_no_url_outside_the_served_folders_or_without_a_server(
    settings: Settings, report: Path, tmp_path: Path
) -> None:
    assert report_url(tmp_path / "elsewhere.html", settings) is None
    assert report_url(settings.monitoring_dir / ".." / "secret.html", settings) is None
    unserved = settings.model_copy(update={"reports_url": None})
    assert report_url(report, unserved) is None
    assert report_link(report, unserved, "drift report") == f"drift report: `{report}`"
    assert report_link(report, settings, "drift").startswith(f"[drift]({BASE}/monitoring/")


def test_the_server_serves_the_report_at_that_url(settings: Settings, report: Path) -> None:
    url = report_url(report, settings)
    assert url is not None
    with TestClient(create_app(settings)) as client:
        page = client.get(url.removeprefix(BASE))
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "attachment" not in page.headers.get("content-disposition", "")
        assert "Drift of demand" in page.text
        assert client.get("/monitoring/../settings.py").status_code == 404
        assert client.get("/data-docs/index.html").status_code == 404  # not built yet
        assert client.get("/health").json()["ok"] is True
