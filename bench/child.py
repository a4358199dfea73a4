"""Run one side of a benchmark in its own process: its JSON answer, wall time and peak memory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(
    module: str, args: list[str], env: dict[str, str], log: Path
) -> tuple[dict, float, float]:
    """`python -m module args...`: its last stdout line as JSON, wall seconds, peak RSS in MiB."""
    started = time.perf_counter()
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        output = process.stdout.read() if process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)  # rusage of this child alone
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise RuntimeError(f"{module} {' '.join(args)} failed with exit code {code}:\n{tail}")
    return json.loads(output.strip().splitlines()[-1]), seconds, usage.ru_maxrss / 1024


def prepare_case(
    case: Path, config: dict, reference: Path, api_url: str, base_env: dict[str, str]
) -> tuple[Path, dict[str, str]]:
    """A self-contained benchmark case: its config, its own GX suites profiled on `reference`,
    and the environment its children run with (MLflow, artifacts and GX all inside `case`)."""
    import pandas as pd
    import yaml
    from mlflow.tracking import MlflowClient

    from prefect_mlops.config import load_config
    from prefect_mlops.expectations.profile import init_suites
    from prefect_mlops.settings import Settings

    config_path = case / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    gx_root = case / "great_expectations"
    shutil.copytree(
        ROOT / "great_expectations", gx_root, ignore=shutil.ignore_patterns("uncommitted")
    )
    settings = Settings(gx_root=gx_root, artifact_root=case / "artifacts")
    init_suites(load_config(config_path), settings, pd.read_parquet(reference))
    # The tracking store exists before the measured runs, as it does for every run of a
    # deployment but the very first (creating it runs MLflow's migrations, about 1.5 s).
    tracking_uri = f"sqlite:///{case / 'mlflow.db'}"
    MlflowClient(tracking_uri).search_experiments()
    env = {
        **base_env,
        "PREFECT_API_URL": api_url,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLOPS_ARTIFACT_ROOT": str(case / "artifacts"),
        "MLOPS_GX_ROOT": str(gx_root),
    }
    return config_path, env
