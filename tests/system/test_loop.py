"""The closed loop on a real stack: serve, drift, event, triggered retraining, new champion served.

Driven through deployments as a user would: the training and monitoring runs are
`prefect deployment run`s executed by the worker; the retraining run is started by the
`retrain-on-drift` trigger declared in prefect.yaml, nothing else.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from deployments.replay import replay, wait_for_log
from tests.conftest import BIKESHARE_CONFIG, BIKESHARE_CSV
from tests.system import test_browser as browsing
from tests.system.conftest import LOOP_MODEL, Stack, flow_runs, wait_for
from tests.system.test_browser import MLFLOW_NO_AUTH, Offline

pytestmark = pytest.mark.system
RETRAINING_LINK = f"retraining-run-{LOOP_MODEL}"
browser, shots = browsing.browser, browsing.shots  # Chromium and kept screenshots, as there


def months(frame: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    month = pd.to_datetime(frame["timestamp"]).dt.month
    return frame[(month >= first) & (month <= last)]


def loop_config(workdir: Path, landing: Path) -> Path:
    raw = yaml.safe_load(BIKESHARE_CONFIG.read_text())
    raw.update(
        name="loop",
        registered_model_name=LOOP_MODEL,
        source={"kind": "csv", "path": str(landing)},
        training_window={"time_column": "timestamp", "days": 92},
        tuning={"cv_folds": 2, "max_configs_per_candidate": 1},
        candidates=[
            {"name": "ridge", "estimator": "linear", "search_space": {"alpha": [1.0]}},
            {"name": "hgb", "estimator": "hist_gradient_boosting", "params": {"max_iter": 60}},
        ],
    )
    raw["gate"]["thresholds"] = {}
    path = workdir / "loop.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def served_version(url: str) -> str | None:
    """The version the service answers with, or None while it has no model loaded."""
    answer = httpx.get(f"{url}/metadata", timeout=10)
    return str(answer.json()["version"]) if answer.status_code == 200 else None


def model_events(stack: Stack) -> dict[str, dict]:
    """Monitoring events about the loop's model that reached the Prefect server, by name."""
    body = {"filter": {"event": {"prefix": ["mlops.model."]}}, "limit": 50}
    found = httpx.post(f"{stack.settings.prefect_api_url}/events/filter", json=body, timeout=10)
    found.raise_for_status()
    return {
        e["event"]: e["payload"]
        for e in found.json()["events"]
        if e["resource"]["prefect.resource.id"] == f"mlops.model.{LOOP_MODEL}"
    }


def training_runs(stack: Stack) -> list[dict]:
    """Every run of the training flow on the stack's server (not the test harness), newest first."""
    return flow_runs(stack, "training")


def triggered_training_runs(stack: Stack) -> list[dict]:
    """Training runs the retrain-on-drift trigger started (it asks for the recent window)."""
    return [
        run
        for run in training_runs(stack)
        if run["parameters"].get("params", {}).get("window") == "recent"
    ]


def artifacts_of(stack: Stack, flow_run_id: str, key: str) -> list[dict]:
    """The artifacts of a flow run under `key`."""
    body = {"artifacts": {"key": {"any_": [key]}}, "flow_runs": {"id": {"any_": [flow_run_id]}}}
    found = httpx.post(f"{stack.settings.prefect_api_url}/artifacts/filter", json=body, timeout=10)
    found.raise_for_status()
    return found.json()


def log_lines(stack: Stack, flow_run_id: str) -> list[str]:
    """The messages of a flow run's log (what its page's Logs tab lists)."""
    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
    found = httpx.post(f"{stack.settings.prefect_api_url}/logs/filter", json=body, timeout=10)
    found.raise_for_status()
    return [log["message"] for log in found.json()]


def flow_run_page(stack: Stack, flow_run_id: str) -> str:
    """A flow run's page in the stack's Prefect UI."""
    return f"{stack.settings.prefect_api_url.removesuffix('/api')}/runs/flow-run/{flow_run_id}"


def finished(stack: Stack, flow_run_id: str) -> dict | None:
    """The flow run once it is in a final state."""
    found = httpx.get(f"{stack.settings.prefect_api_url}/flow_runs/{flow_run_id}", timeout=10)
    found.raise_for_status()
    run = found.json()
    return run if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None


def test_drift_event_retrains_and_the_service_follows(
    deployed: Stack, tmp_path: Path, browser: Any, shots: Path
) -> None:
    stack = deployed
    year = pd.read_csv(BIKESHARE_CSV)
    landing = tmp_path / "landing.csv"
    months(year, 1, 3).to_csv(landing, index=False)
    config = loop_config(tmp_path, landing)
    params = json.dumps({"config_path": str(config)})

    first = stack.run(
        "prefect", "deployment", "run", "training/train", "--watch", "--param", f"params={params}"
    )
    assert first.returncode == 0, first.stdout[-3000:]
    url = stack.settings.serve_url
    wait_for(lambda: served_version(url) == "1", 120, "the service to load v1")

    summer = months(year, 7, 9)
    sent = replay(
        url,
        summer,
        [c for c in summer.columns if c not in ("bikers", "casual", "registered", "timestamp")],
        "bikers",
    )
    wait_for_log(Path(stack.env["MLOPS_ARTIFACT_ROOT"]) / "prediction_log", sent)
    pd.concat([months(year, 1, 3), summer]).to_csv(landing, index=False)  # new data landed

    monitor_params = json.dumps({"config_path": str(config), "window": {"hours": 24}})
    monitoring = stack.run(
        "prefect",
        "deployment",
        "run",
        "monitoring/monitor-bikeshare",
        "--watch",
        "--param",
        f"params={monitor_params}",
    )
    assert monitoring.returncode == 0, monitoring.stdout[-3000:]

    events = model_events(stack)
    assert {"mlops.model.drift-detected", "mlops.model.performance-degraded"} & set(events), (
        f"monitoring emitted {events}; its output: {monitoring.stdout[-2000:]}"
    )
    try:
        runs = wait_for(
            lambda: triggered_training_runs(stack), 180, "the trigger to start training"
        )
    except AssertionError as exc:
        seen = [(r["name"], r["state_name"], r["parameters"]) for r in training_runs(stack)]
        raise AssertionError(f"{exc}; training runs: {seen}") from exc
    assert len(runs) == 1
    triggered = runs[0]["parameters"]["params"]
    assert triggered["reason"].startswith("mlops.model.")
    assert triggered["config_path"] == str(config)
    client = MlflowClient(tracking_uri=stack.settings.mlflow_url)
    wait_for(
        lambda: str(client.get_registered_model(LOOP_MODEL).aliases.get("champion")) == "2",
        300,
        "the retrained model to become champion",
    )
    wait_for(lambda: served_version(url) == "2", 120, "the service to swap to v2")

    # The episode, one click at a time (issue 13): the alarmed monitoring run's page links the
    # retraining run its event started, and that run's summary names and links it back, with
    # the drift report it raised its alarm on.
    monitored = [
        r
        for r in flow_runs(stack, "monitoring")
        if r["parameters"].get("params", {}).get("config_path") == str(config)
    ]
    assert len(monitored) == 1, monitored
    monitoring_run, retraining = monitored[0], runs[0]
    assert triggered["trigger_event"] in events_of_run(stack, monitoring_run["id"])
    done = wait_for(lambda: finished(stack, retraining["id"]), 120, "the retraining run to end")
    assert done["state"]["type"] == "COMPLETED", done["state"]
    links = artifacts_of(stack, monitoring_run["id"], RETRAINING_LINK)
    assert len(links) == 1, links
    assert f"]({flow_run_page(stack, retraining['id'])})" in links[0]["data"], links[0]
    # the same link in the monitoring run's log, the tab its page opens on (one click), beside
    # its drift report's
    retraining_page = flow_run_page(stack, retraining["id"])
    monitoring_log = log_lines(stack, monitoring_run["id"])
    linked = [line for line in monitoring_log if retraining_page in line]
    assert len(linked) == 1 and line_ends_with_url(linked[0], retraining_page), linked
    report_lines = [line for line in monitoring_log if line.startswith("Evidently drift report")]
    assert len(report_lines) == 1, monitoring_log
    assert f" {stack.settings.reports_url}/monitoring/" in report_lines[0], report_lines
    [summary] = artifacts_of(stack, retraining["id"], "training-loop")
    started = [line for line in summary["data"].splitlines() if line.startswith("**Started by")]
    assert len(started) == 1, summary["data"]
    monitoring_page = flow_run_page(stack, monitoring_run["id"])
    assert f"]({monitoring_page})" in started[0], started
    assert monitoring_run["name"] in started[0] and "drift report" in started[0], started
    assert f"({stack.settings.reports_url}/monitoring/" in started[0], started
    # ... and ends on the service answering with the version it made champion
    service_page = f"{stack.settings.serve_url}/v2/models/{LOOP_MODEL}"
    assert f"]({service_page})" in summary["data"], summary
    # the run's Logs tab links the monitoring run, the new version and the service, each a URL
    # closing its line (the Prefect UI makes those links)
    logged = log_lines(stack, retraining["id"])
    for page in (monitoring_page, f"/#/models/{LOOP_MODEL}/versions/2", service_page):
        assert any(line.rstrip().endswith(page) for line in logged), (page, logged)
    walk_the_episode(stack, browser, shots, monitoring_run, done)


def walk_the_episode(
    stack: Stack, chromium: Any, folder: Path, monitoring_run: dict, retraining: dict
) -> None:
    """What a person with the Prefect UI does: from the alarmed monitoring run's page to the
    retraining run, its summary (gate decision), the new version in MLflow, the service
    answering with it and the drift report, clicking the links on the pages (Chromium,
    offline)."""
    with Offline(chromium) as context:
        page = context.page()
        page.goto(flow_run_page(stack, monitoring_run["id"]))
        # the page opens on its Logs tab, where the retraining run's URL is a link: one click
        retraining_page = flow_run_page(stack, retraining["id"])
        in_log = page.get_by_role("link", name=retraining_page)
        in_log.first.wait_for(timeout=60_000)
        page.screenshot(path=str(folder / "episode-0-monitoring-log.png"), full_page=True)
        assert in_log.first.get_attribute("href") == retraining_page
        # ... and the Artifacts tab has it as a card
        artifact_card(page, RETRAINING_LINK, folder / "episode-1-monitoring-run.png").click()
        retrain = page.get_by_role("link", name=f"retraining run {retraining['name']}")
        run = follow(context, retrain)
        assert run.url.startswith(retraining_page), run.url
        artifact_card(run, "training-loop", folder / "episode-2-retraining-run.png").click()
        back = run.get_by_role("link", name=monitoring_run["name"])
        back.wait_for(timeout=60_000)
        run.screenshot(path=str(folder / "episode-3-training-summary.png"), full_page=True)
        summary = " ".join(run.inner_text("body").split())
        assert back.get_attribute("href") == flow_run_page(stack, monitoring_run["id"])
        assert "Model gate: BLESSED" in summary and "promoted to champion" in summary, summary
        version = follow(context, run.get_by_role("link", name=f"{LOOP_MODEL} v2"))
        version.get_by_text("Version 2").first.wait_for(timeout=60_000)
        version.screenshot(path=str(folder / "episode-4-mlflow-version.png"), full_page=True)
        service = follow(context, run.get_by_role("link", name="on the prediction service"))
        answer = " ".join(service.inner_text("body").split())
        service.screenshot(path=str(folder / "episode-5-service.png"))
        assert re.search(r'"versions": ?\["2"\]', answer), answer
        drift = follow(context, run.get_by_role("link", name="drift report"))
        assert drift.url.startswith(stack.settings.reports_url), drift.url
        drift.get_by_text("Dataset Drift").first.wait_for(timeout=60_000)
        drift.screenshot(path=str(folder / "episode-6-drift-report.png"))
    # Prefect 3.8's flow run page asks for an icon of its own named `undefined`, and gets a 404.
    missing_icon = f"{stack.settings.prefect_api_url.removesuffix('/api')}/ico/undefined.svg (404)"
    allowed = (MLFLOW_NO_AUTH, missing_icon)
    problems = [p for p in context.problems() if not p.endswith(allowed)]
    assert not problems, problems


def follow(context: Offline, link: Any) -> Any:
    """The page a link opens (the Prefect UI opens markdown links in a new tab), its failed
    requests recorded like those of the context's own pages."""
    link.wait_for(timeout=60_000)
    with context.context.expect_page(timeout=60_000) as opened:
        link.click()
    page = opened.value
    page.on("requestfailed", lambda r: context.failed.append(f"{r.url} ({r.failure})"))
    page.on(
        "response",
        lambda r: (
            context.failed.append(f"{r.url} ({r.status})")
            if r.status >= 400 and not r.url.endswith("favicon.ico")
            else None
        ),
    )
    page.wait_for_load_state()
    return page


def artifact_card(page: Any, key: str, shot: Path) -> Any:
    """The card of artifact `key` on the Artifacts tab of the flow run page shown."""
    page.get_by_text("Artifacts", exact=True).first.click()
    card = page.get_by_role("link").filter(has_text=key).first
    try:
        card.wait_for(timeout=60_000)
    finally:
        page.screenshot(path=str(shot), full_page=True)
    return card


def line_ends_with_url(line: str, url: str) -> bool:
    """The URL closes the line, so the UI's link covers all of it and nothing more."""
    return line.rstrip().endswith(url)


def events_of_run(stack: Stack, flow_run_id: str) -> set[str]:
    """Ids of the monitoring events Prefect attached to a flow run (emitted inside it)."""
    body = {
        "filter": {
            "event": {"prefix": ["mlops.model."]},
            "related": {"id": [f"prefect.flow-run.{flow_run_id}"]},
        },
        "limit": 50,
    }
    found = httpx.post(f"{stack.settings.prefect_api_url}/events/filter", json=body, timeout=10)
    found.raise_for_status()
    return {e["id"] for e in found.json()["events"]}
