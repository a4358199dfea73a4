"""What a person sees, in Debian's Chromium driven by Playwright (never a downloaded browser).

Real servers on loopback: the report server over a Data Docs site built by a real validation,
the prediction service over a registered model, and the stack (`deployed`): the Prefect and
MLflow UIs after a training deployment run. Each page is opened in a browser context
that refuses every request leaving loopback, and the test fails when any request of the page
fails: the pages must render with no network. Screenshots are kept under
.test-logs/screenshots/. Needs Chromium: `.ci/install-chromium.sh` (CI runs it).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pandas as pd
import pytest
import uvicorn
from mlflow.tracking import MlflowClient

from prefect_mlops.config import PipelineConfig
from prefect_mlops.expectations.run import validate_frame
from prefect_mlops.report_server import create_app as create_report_app
from prefect_mlops.reports import mlflow_version_url, number
from prefect_mlops.settings import Settings
from serving.app import create_app as create_service_app
from tests.conftest import BIKESHARE_CSV, fast_config_dict, write_config
from tests.prefect_mlops.expectations.helpers import copy_gx
from tests.serving.conftest import REGRESSOR, Store, make_settings, register
from tests.system.conftest import Stack, flow_runs

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = {"127.0.0.1", "localhost"}
SCREENSHOTS = ROOT / ".test-logs" / "screenshots"
TOKEN = "browser-docs-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """An ASGI app served by uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            assert self.thread.is_alive(), "server stopped"
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def off_host(url: str) -> bool:
    return not url.startswith(("data:", "blob:")) and urlparse(url).hostname not in LOOPBACK


class Offline:
    """A browser context in which every request leaving loopback is refused, and recorded:
    `blocked` holds those refused here, `attempted` every one a page made, including those
    its own Content-Security-Policy refused before they reached the network."""

    def __init__(self, browser: Any, headers: dict[str, str] | None = None) -> None:
        self.context = browser.new_context(
            extra_http_headers=headers or {}, viewport={"width": 1280, "height": 900}
        )
        self.blocked: list[str] = []
        self.attempted: list[str] = []
        self.failed: list[str] = []
        self.context.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if off_host(url):
            self.blocked.append(url)
            route.abort()
        else:
            route.continue_()

    def page(self) -> Any:
        page = self.context.new_page()
        page.on("request", lambda r: self.attempted.append(r.url) if off_host(r.url) else None)
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))
        page.on("response", self._status)
        return page

    def problems(self) -> list[str]:
        """Every request off loopback (refused or not) and every request that failed."""
        return sorted({*self.blocked, *self.attempted}) + self.failed

    def _status(self, response: Any) -> None:
        if response.status >= 400 and not response.url.endswith("favicon.ico"):
            self.failed.append(f"{response.url} ({response.status})")

    def __enter__(self) -> Offline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium; install it with "
            "`.ci/install-chromium.sh` (CI runs it before `make test`)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copytree(folder, SCREENSHOTS, dirs_exist_ok=True)


def test_data_docs_page_renders_offline_at_its_report_url(
    browser: Any, shots: Path, tmp_path: Path, bikeshare: Any
) -> None:
    from prefect_mlops.config import load_config

    config: PipelineConfig = load_config(ROOT / "configs" / "bikeshare.yaml")
    always = config.model_copy(
        update={"validation": config.validation.model_copy(update={"data_docs": "always"})}
    )
    settings: Settings = copy_gx(tmp_path)
    report = Served(create_report_app(settings))
    settings = settings.model_copy(update={"reports_url": report.url})
    summary = validate_frame(bikeshare, always, settings, "training", batch_id="browser")
    assert summary.data_docs_url and summary.data_docs_url.startswith(report.url + "/data-docs/")
    with report, Offline(browser) as context:
        page = context.page()
        page.goto(summary.data_docs_url)
        row = page.locator("td", has_text="bikeshare.training").first  # rows are links (its JS ran)
        row.wait_for(timeout=30_000)
        row.click()
        page.get_by_text("Observed Value").first.wait_for(timeout=30_000)
        position = page.evaluate("getComputedStyle(document.querySelector('.navbar')).position")
        text = page.inner_text("body")
        page.screenshot(path=str(shots / "data-docs-validation.png"), full_page=True)
    assert position == "sticky"  # Bootstrap's CSS loaded
    assert "Succeeded" in text and "% not null" in text and "8645" in text
    assert not context.problems(), context.problems()


@pytest.fixture
def model_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    store = Store(uri, tmp_path, MlflowClient(tracking_uri=uri))
    register(store, REGRESSOR)
    return store


def test_service_docs_render_offline_with_the_models_example(
    browser: Any, shots: Path, tmp_path: Path, model_store: Store
) -> None:
    app = create_service_app(make_settings(model_store, tmp_path, token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with Served(app) as service, Offline(browser, auth) as context:
        page = context.page()
        page.goto(f"{service.url}/docs#/predict/predict_predict_post")
        example = page.locator(".opblock.is-open .body-param__example").first
        example.wait_for(timeout=60_000)
        shown = example.inner_text()
        page.screenshot(path=str(shots / "service-docs.png"), full_page=True)
    assert all(f'"{column}"' in shown for column in ("temp", "hum", "hr", "season", "weather"))
    assert '"feature"' not in shown
    assert not context.problems(), context.problems()


def test_service_redoc_renders_offline_asking_no_other_host(
    browser: Any, shots: Path, tmp_path: Path, model_store: Store
) -> None:
    app = create_service_app(make_settings(model_store, tmp_path, token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with Served(app) as service, Offline(browser, auth) as context:
        page = context.page()
        policy = page.goto(f"{service.url}/redoc").headers["content-security-policy"]
        page.get_by_text("Predict JSON records").first.wait_for(timeout=60_000)
        page.get_by_text("API docs by Redocly").wait_for(timeout=10_000)  # the badge, imageless
        page.get_by_placeholder("Search...").fill("feedback")
        page.locator("[data-role='search:results'] li").first.wait_for(timeout=10_000)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(shots / "service-redoc.png"))
    # Not one request off loopback, not even one the page's CSP refused (cdn.redoc.ly's logo was).
    assert not context.problems(), context.problems()
    assert "default-src 'self'" in policy  # and the page may load from the service only


BROWSER_MODEL = "browser-demand"
MLFLOW_NO_AUTH = "/ajax-api/2.0/mlflow/users/current (404)"


def runs_with(stack: Stack, flow: str, config: Path) -> list[dict[str, Any]]:
    """The runs of `flow` on the stack's server started with `config`, newest first."""
    return [
        r
        for r in flow_runs(stack, flow)
        if r["parameters"].get("params", {}).get("config_path") == str(config)
    ]


def training_run_of(stack: Stack, config: Path) -> dict[str, Any]:
    """The training flow run on the stack's server that was started with `config`."""
    runs = runs_with(stack, "training", config)
    assert len(runs) == 1, runs
    return runs[0]


def artifact_id(stack: Stack, flow_run_id: str, key: str) -> str:
    body = {"artifacts": {"key": {"any_": [key]}}, "flow_runs": {"id": {"any_": [flow_run_id]}}}
    found = httpx.post(f"{stack.settings.prefect_api_url}/artifacts/filter", json=body, timeout=10)
    found.raise_for_status()
    assert len(found.json()) == 1, found.json()
    return str(found.json()[0]["id"])


def page_text(context: Offline, url: str, awaited: str, shot: Path) -> str:
    """The text of the page at `url` once `awaited` shows (screenshot and text kept either
    way), its whitespace collapsed (inline code and table cells break lines in innerText)."""
    page = context.page()
    page.goto(url)
    try:
        page.get_by_text(awaited).first.wait_for(timeout=60_000)
    finally:
        page.screenshot(path=str(shot), full_page=True)
        text = " ".join(page.inner_text("body").split())
        shot.with_suffix(".txt").write_text(text)
    assert awaited in text, text[:3000]
    return text


def test_a_deployed_training_run_reads_in_the_prefect_and_mlflow_uis(
    deployed: Stack, browser: Any, shots: Path, tmp_path: Path
) -> None:
    """A training run on the stack: its summary artifact in the Prefect UI and the version it
    registered in the MLflow UI each show the model, its version, the verdict and the figures."""
    stack = deployed
    raw = fast_config_dict(name="browser", registered_model_name=BROWSER_MODEL)
    config = write_config(tmp_path / "browser.yaml", raw)
    params = json.dumps({"config_path": str(config)})
    run = stack.run(
        "prefect", "deployment", "run", "training/train", "--watch", "--param", f"params={params}"
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    flow_run = training_run_of(stack, config)
    summary_id = artifact_id(stack, flow_run["id"], "training-browser")
    body = {"flow_runs": {"id": {"any_": [flow_run["id"]]}}}
    tasks = httpx.post(f"{stack.settings.prefect_api_url}/task_runs/filter", json=body, timeout=10)
    names = [t["name"] for t in tasks.json()]
    assert f"register {BROWSER_MODEL}" in names, names
    # No task run keeps Prefect's `<function>-<key>`.
    defaults = [n.rsplit("-", 1)[0] for n in names if re.fullmatch(r"\w+-\w{1,4}", n)]
    assert defaults == [], names
    assert f"log model {BROWSER_MODEL}" in names, names
    client = MlflowClient(tracking_uri=stack.settings.mlflow_url)
    version = client.get_model_version(BROWSER_MODEL, "1")
    holdout = client.get_run(str(version.run_id)).data.metrics
    prefect_ui = stack.settings.prefect_api_url.removesuffix("/api")
    version_url = mlflow_version_url(stack.settings.mlflow_url, BROWSER_MODEL, "1")
    assert version_url is not None

    with Offline(browser) as context:
        prefect_text = page_text(
            context,
            f"{prefect_ui}/artifacts/artifact/{summary_id}",
            "Training run: browser",
            shots / "prefect-training-summary.png",
        )
        mlflow_text = page_text(
            context, version_url, "Promoted to champion", shots / "mlflow-model-version.png"
        )

    # The summary: the version registered, the gate's verdict, the holdout figures as logged.
    assert re.search(rf"{BROWSER_MODEL}\W{{0,3}}v1", prefect_text), prefect_text[-3000:]
    for shown in ("champion", "BLESSED", number(holdout["holdout_rmse"])):
        assert shown in prefect_text, (shown, prefect_text[-3000:])
    # The version: its number, aliases and the gate decision with the same figures.
    for shown in (BROWSER_MODEL, "Version 1", "champion", f"{holdout['holdout_rmse']:.4g}"):
        assert shown in mlflow_text, (shown, mlflow_text[-3000:])
    # MLflow's UI asks who is signed in; a server without auth answers 404 and the UI goes on.
    problems = [p for p in context.problems() if not p.endswith(MLFLOW_NO_AUTH)]
    assert not problems, problems

    # Monitoring that version on July's rows: its summary in the Prefect UI links the Evidently
    # drift report, which opens from that link on the stack's report server, offline.
    frame = pd.read_csv(BIKESHARE_CSV)
    july = tmp_path / "july.csv"
    frame[pd.to_datetime(frame["timestamp"]).dt.month == 7].to_csv(july, index=False)
    monitored = stack.run(
        "mlops", "monitor", "--config", str(config), "--dataset", str(july), "--no-events"
    )
    assert monitored.returncode == 0, monitored.stdout[-3000:] + monitored.stderr[-3000:]
    monitorings = runs_with(stack, "monitoring", config)
    assert monitorings, flow_runs(stack, "monitoring")
    monitoring = monitorings[0]
    summary = artifact_id(stack, monitoring["id"], f"monitoring-{BROWSER_MODEL}")
    with Offline(browser) as context:
        page = context.page()
        page.goto(f"{prefect_ui}/artifacts/artifact/{summary}")
        anchor = page.get_by_role("link", name="drift report")
        try:
            anchor.wait_for(timeout=60_000)
        finally:
            page.screenshot(path=str(shots / "prefect-monitoring-summary.png"), full_page=True)
        link = anchor.get_attribute("href")
        assert link and link.startswith(stack.settings.reports_url), link
        report = page_text(context, link, "temp", shots / "evidently-drift-report.png")
    # Summary first (July's rows drift from the training year), then every feature's test.
    for shown in ("Dataset Drift is detected", "Share of Drifted Columns", "Drift in column"):
        assert shown in report, (shown, report[:3000])
    for column in ("hum", "windspeed", "prediction"):
        assert column in report, (column, report[:3000])
    assert not context.problems(), context.problems()
