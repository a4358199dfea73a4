"""Registry tasks: model logging helpers, and the champion lock across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from mlflow.tracking import MlflowClient

from prefect_mlops.packaging import MODEL_REQUIREMENTS, pinned_requirements
from prefect_mlops.registry import CHAMPION, PREVIOUS_CHAMPION, version_by_alias
from prefect_mlops.settings import Settings
from tasks.registry import prepare_model_logging
from tests.conftest import ROOT


def test_prepared_requirements_pin_every_model_dependency_to_what_is_installed() -> None:
    pins = prepare_model_logging.fn()
    assert pins == pinned_requirements()
    assert pins == [f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS]


LOCKED_PROMOTION = """
import json, sys, time
from contextlib import contextmanager
from pathlib import Path

from prefect_mlops.registry import promote_if_still_better
from prefect_mlops.settings import Settings
from prefect_mlops.tracking import mlflow_client
from tasks.locks import champion_lock

model, version, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
settings = Settings()
lock = champion_lock(settings)

@contextmanager
def traced(name):
    with lock(name):
        with (folder / "trace").open("a") as trace:
            trace.write(f"enter {version}\\n")
        time.sleep(1.0)  # widen the window another process could slip into
        yield
        with (folder / "trace").open("a") as trace:
            trace.write(f"exit {version}\\n")

(folder / f"ready-{version}").touch()
while len(list(folder.glob("ready-*"))) < 2:  # both decided against v1: now race
    time.sleep(0.05)
moved = promote_if_still_better(
    mlflow_client(settings), model, version, "1", lambda current: False, traced
)
print(json.dumps({"version": version, "moved": moved}))
"""


def test_two_processes_moving_one_champion_take_turns_and_keep_the_rollback_target(
    settings: Settings, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    client.create_registered_model("race-demand")
    run = client.create_run("0")
    for _ in range(3):
        client.create_model_version("race-demand", source=str(tmp_path), run_id=run.info.run_id)
    client.set_registered_model_alias("race-demand", CHAMPION, "1")
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", LOCKED_PROMOTION, "race-demand", version, str(tmp_path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for version in ("2", "3")
    ]
    outcomes = [json.loads(racer.communicate(timeout=240)[0]) for racer in racers]

    assert [racer.returncode for racer in racers] == [0, 0]
    movers = [o["version"] for o in outcomes if o["moved"]]
    assert len(movers) == 1  # the second re-read the champion inside the lock and stood down
    trace = (tmp_path / "trace").read_text().split()
    first, second = trace[1], trace[5]
    assert trace == ["enter", first, "exit", first, "enter", second, "exit", second]
    assert version_by_alias(client, "race-demand", CHAMPION) == movers[0]
    assert version_by_alias(client, "race-demand", PREVIOUS_CHAMPION) == "1"
