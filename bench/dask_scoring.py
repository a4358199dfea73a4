"""Benchmark (issue 15 b): batch scoring on a Dask cluster against in-process predict, same cores.

One Parquet file of rows shaped like the bike-sharing example is scored by the batch-scoring flow
twice, each run in its own child process against one `prefect server` on loopback: with
`MLOPS_TASK_RUNNER=threads` (today: the flow's process predicts every chunk, OpenMP on every core)
and with the address of a `distributed.LocalCluster` of two single-thread worker processes on the
same machine (chunks go to the workers as `predict_chunk` tasks, two per slot in flight; reading,
writing and the log stay on the flow's process). Throughput is the scoring step's own rows/s
(`ScoringSummary.seconds`: the validation pass over every chunk is the same on both sides and
is reported apart); memory is the flow process's peak RSS and each worker's peak RSS.

    python -m bench.dask_scoring                        # 10M rows, chunks of 250k
    python -m bench.dask_scoring --rows 2000000 --chunk-rows 100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd

from bench.child import prepare_case, run_child
from bench.training import ROOT, bench_config, free_port, synthesise

MODEL = {"name": "hgb", "estimator": "hist_gradient_boosting", "params": {"max_iter": 100}}


def start_prefect_server(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """`prefect server start` on a free loopback port; waits up to 10 minutes for its health
    (a busy machine needs more than bench.training's two)."""
    port = free_port()
    prefect = str(Path(sys.executable).parent / "prefect")
    server = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={**env, "PREFECT_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=5)
            return server, url
        except OSError:
            time.sleep(1)
    server.terminate()
    raise RuntimeError("prefect server did not become healthy within 600 s")


def register_champion(config_path: Path, data: Path, env: dict[str, str]) -> None:
    """Fit the benchmark's model on 20k rows and register it as the config's champion."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from prefect_mlops.config import load_config
    from prefect_mlops.estimators import build_model
    from prefect_mlops.features import infer_schema
    from prefect_mlops.packaging import log_sklearn_model
    from prefect_mlops.results import CandidateSpec

    config = load_config(config_path)
    frame = pd.read_parquet(data).head(20_000)
    schema = infer_schema(frame, config)
    spec = CandidateSpec(
        name="hgb", estimator="hist_gradient_boosting", params=MODEL["params"], index=0
    )
    model = build_model(spec, schema, 0).fit(frame[schema.features], frame[schema.target])
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    artifacts = (Path(env["MLOPS_ARTIFACT_ROOT"]) / "mlflow").resolve().as_uri()
    run = client.create_run(client.create_experiment("bench", artifact_location=artifacts))
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    info = log_sklearn_model(model, frame[schema.features].head(5), run.info.run_id)
    client.create_registered_model(config.registered_model_name)
    version = client.create_model_version(
        config.registered_model_name, source=info.model_uri, run_id=run.info.run_id
    )
    client.set_registered_model_alias(config.registered_model_name, "champion", version.version)


def score_child(config_path: str, rows_path: str, output: str, chunk_rows: str) -> None:
    """The batch-scoring flow in this process; its summary as JSON."""
    from flows.scoring import ScoringParams, scoring_flow
    from prefect_mlops.destinations import ParquetDestination
    from prefect_mlops.sources import ParquetSource

    started = time.perf_counter()
    summary = scoring_flow(
        ScoringParams(
            config_path=config_path,
            source=ParquetSource(path=rows_path),
            destination=ParquetDestination(path=output),
            chunk_rows=int(chunk_rows),
            log_predictions=False,
        )
    )
    flow_seconds = time.perf_counter() - started
    print(json.dumps({**summary.model_dump(), "flow_seconds": flow_seconds}))


def worker_peaks(address: str) -> list[float]:
    """Each worker's peak RSS in MiB (getrusage of the worker process)."""
    import distributed

    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    with distributed.Client(address, set_as_default=False) as client:
        return sorted(client.run(peak).values())


def run(rows: int, chunk_rows: int) -> dict[str, Any]:
    import distributed

    from prefect_mlops.dask_runner import local_cluster_kwargs

    work = Path(tempfile.mkdtemp(prefix="bench-dask-scoring-"))
    base = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "GX_ANALYTICS_ENABLED": "false",
    }
    base_env = {**os.environ, **base}
    server, api_url = start_prefect_server(work / "prefect", base_env)
    try:
        data = work / "rows.parquet"
        made = time.perf_counter()
        synthesise(rows).to_parquet(data, index=False)
        print(f"{rows:,} rows written in {time.perf_counter() - made:.0f} s", flush=True)
        config = bench_config(data)
        config["candidates"] = [MODEL]
        reference = work / "reference.parquet"
        pd.read_parquet(data).head(50_000).to_parquet(reference, index=False)
        config_path, env = prepare_case(work, config, reference, api_url, base_env)
        register_champion(config_path, reference, env)
        unlabelled = work / "unlabelled.parquet"
        pd.read_parquet(data).drop(columns=["bikers"]).to_parquet(unlabelled, index=False)
        args = [str(config_path), str(unlabelled)]

        def side(runner: str, name: str) -> tuple[dict, float, float]:
            out = str(work / f"{name}.parquet")
            child_env = {**env, "MLOPS_TASK_RUNNER": runner}
            return run_child(
                "bench.dask_scoring",
                ["--child", *args, out, str(chunk_rows)],
                child_env,
                work / f"{name}.log",
            )

        threads, threads_wall, threads_mib = side("threads", "threads")
        kwargs = {**local_cluster_kwargs(), "n_workers": 2, "threads_per_worker": 1}
        with distributed.LocalCluster(**kwargs) as cluster:
            on_dask, dask_wall, dask_mib = side(cluster.scheduler_address, "dask")
            peaks = worker_peaks(cluster.scheduler_address)
        same = pd.read_parquet(work / "threads.parquet", columns=["prediction"]).equals(
            pd.read_parquet(work / "dask.parquet", columns=["prediction"])
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "rows": rows,
        "chunk_rows": chunk_rows,
        "threads_rows_per_s": rows / threads["seconds"],
        "dask_rows_per_s": rows / on_dask["seconds"],
        "ratio": threads["seconds"] / on_dask["seconds"],
        "threads_flow_s": threads["flow_seconds"],
        "dask_flow_s": on_dask["flow_seconds"],
        "threads_process_wall_s": threads_wall,
        "dask_process_wall_s": dask_wall,
        "threads_flow_peak_mib": threads_mib,
        "dask_flow_peak_mib": dask_mib,
        "dask_worker_peak_mib": peaks,
        "same_predictions": same,
    }
    print(json.dumps(result, indent=2), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        score_child(*args.child)
        return
    result = run(args.rows, args.chunk_rows)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"dask-scoring-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json").write_text(
        json.dumps(result, indent=2)
    )


if __name__ == "__main__":
    main()
