"""Notifications are delivered: a drift event and a failed flow run each POST once to the webhook.

A real `prefect server` on loopback (started as `mlops up` starts it, alone), the automations and
block created by `python -m deployments.setup` from `MLOPS_NOTIFY_WEBHOOK_URL`, and a tiny HTTP
receiver on 127.0.0.1 standing in for the team's webhook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from prefect_mlops.stack import StackSettings, services, stack_env, start_service, stop_service
from tests.system.conftest import ROOT, free_port

pytestmark = pytest.mark.system
MODEL = "notify-demo"
FAILED_RUN = "notify-check-failure"

# Runs in a client process of the server: the monitoring task's own emitter with a drift summary,
# then the monitoring flow on a config that does not exist, so its run fails.
CLIENT = f"""
from prefect_mlops.monitoring import DRIFT_DETECTED, Breach, DriftSummary, MonitoringDecision
from tasks.monitor import emit_monitoring_events
from flows.monitoring import MonitoringParams, monitoring_flow

breach = Breach(kind="feature-drift", event=DRIFT_DETECTED, detail="temp, hum drifted")
summary = DriftSummary(
    model_name="{MODEL}", model_version="3", alias="champion", window="log: last 24 hours",
    current_rows=500, drifted_share=0.5, drifted_columns=["temp", "hum"],
    decision=MonitoringDecision(outcome="alarm", breaches=[breach], reason=breach.detail),
)
emit_monitoring_events.fn(summary)
try:
    monitoring_flow.with_options(flow_run_name="{FAILED_RUN}")(
        MonitoringParams(config_path="configs/does-not-exist.yaml")
    )
except Exception as exc:
    print("failed as intended:", type(exc).__name__)
else:
    raise SystemExit("the monitoring run should have failed")
"""


class Receiver:
    """A webhook on loopback that records the JSON body of every POST."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                with received.lock:
                    received.posts.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for(self, count: int, seconds: float) -> list[dict]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.posts) >= count:
                    return list(self.posts)
            time.sleep(0.5)
        with self.lock:
            return list(self.posts)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackSettings]:
    """A Prefect server alone (no worker, no deployments, so no retraining trigger)."""
    settings = StackSettings(dir=tmp_path_factory.mktemp("notify"), prefect_port=free_port())
    server = services(settings, ROOT)[0]
    assert server.name == "prefect-server"
    start_service(settings, server)
    yield settings
    stop_service(settings, server)


def client_env(settings: StackSettings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **stack_env(settings),
        "PREFECT_HOME": str(settings.dir / "client"),
        **extra,
    }


def test_drift_event_and_failed_run_each_notify_the_webhook_once(
    prefect_server: StackSettings, receiver: Receiver
) -> None:
    env = client_env(prefect_server, MLOPS_NOTIFY_WEBHOOK_URL=receiver.url)
    setup = subprocess.run(
        [sys.executable, "-m", "deployments.setup"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "automation 'mlops: model drift or decay': created" in setup.stdout

    client = subprocess.run(
        [sys.executable, "-c", CLIENT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert client.returncode == 0, client.stdout[-3000:] + client.stderr[-3000:]

    receiver.wait_for(2, 90)
    time.sleep(3)  # a duplicate delivery would arrive within this grace
    posts = receiver.wait_for(0, 0)
    drift = [p for p in posts if "mlops.model.drift-detected" in p.get("title", "")]
    failed = [p for p in posts if FAILED_RUN in p.get("title", "")]
    assert len(drift) == 1, posts
    assert len(failed) == 1, posts
    assert drift[0]["title"] == f"mlops.model.drift-detected on mlops.model.{MODEL}"
    assert drift[0]["text"] == (
        f"{MODEL} v3 (@champion), log: last 24 hours: temp, hum drifted"
        " (report: none, MLflow run: none)"
    )
    assert failed[0]["title"] == f"Flow run {FAILED_RUN} failed"
    assert failed[0]["text"].startswith(f"monitoring/{FAILED_RUN}: ")
    assert len(posts) == 2, posts
