"""Side-by-side benchmark: this service vs `mlflow models serve`, same model, same workers.

Usage: `.venv/bin/python -m bench.serving.run [--seconds 15] [--connections 8] [--workers 1]`.
Trains the bikeshare pipeline (prefect_mlops.estimators.build_model, Ridge), logs and registers
it like the training flow, starts both servers on loopback, drives them with wrk (single-row
`dataframe_split` requests, the same body for both), times 10k-row batches against in-process
`predict`, prints a table and writes bench/results/serving-<time>.json.

Alias swaps (`--swaps 10`, `--swaps-only` for this part alone): the service polling the alias
every `--poll-seconds`, wrk for `--seconds` without swaps, then as long again while the alias
flips between two versions `--swaps` times; p99 of both runs (goal: within 2x) and, per flip,
the time until the service names the new version (goal: one poll interval plus the load).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import mlflow
import orjson
import pandas as pd
from mlflow.tracking import MlflowClient

from prefect_mlops.config import load_config
from prefect_mlops.estimators import build_model
from prefect_mlops.features import infer_schema
from prefect_mlops.packaging import log_sklearn_model
from prefect_mlops.results import CandidateSpec, FeatureSchema
from prefect_mlops.sources import CsvSource

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
NAME = "bench-bikeshare"
ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_TELEMETRY": "false",
    "DO_NOT_TRACK": "true",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def register_model(work: Path, estimator: str) -> tuple[str, pd.DataFrame]:
    """Fit the bikeshare pipeline, log it like tasks.registry.log_model, alias it champion."""
    config = load_config(ROOT / "configs" / "bikeshare.yaml")
    if not isinstance(config.source, CsvSource):
        raise SystemExit("the benchmark expects the bundled CSV source of configs/bikeshare.yaml")
    frame = pd.read_csv(ROOT / config.source.path)
    schema = infer_schema(frame, config)
    spec = CandidateSpec(name=estimator, estimator=estimator, params={}, index=0)
    model = build_model(spec, schema, config.seed)
    model.fit(frame[schema.features], frame[schema.target])
    uri = f"sqlite:///{work / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(NAME, artifact_location=(work / "artifacts").as_uri())
    run = client.create_run(experiment)
    example = signature_example(frame.head(5), schema)
    mlflow.set_tracking_uri(uri)
    info = log_sklearn_model(model, example, run.info.run_id)
    client.set_terminated(run.info.run_id)
    client.create_registered_model(NAME)
    version = client.create_model_version(
        NAME, source=info.model_uri, run_id=run.info.run_id, model_id=info.model_id
    ).version
    client.set_registered_model_alias(NAME, "champion", version)
    features = signature_example(frame, schema)
    return uri, features


def signature_example(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """Feature columns with integer numerics as floats, as the training flow logs them."""
    example = frame[schema.features]
    integers = [c for c in schema.numeric if pd.api.types.is_integer_dtype(example[c])]
    return example.astype(dict.fromkeys(integers, "float64"))


@contextmanager
def server(command: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[None]:
    """Start a server process, wait until `ready_url` answers 200, stop it afterwards."""
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(f"{command[0]} exited; see {log}")
                try:
                    if httpx.get(ready_url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
            else:
                raise RuntimeError(f"{ready_url} not ready after 120 s; see {log}")
            yield
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def run_wrk(
    url: str, body: bytes, seconds: int, connections: int, work: Path, warm: bool = True
) -> dict[str, float]:
    """Requests/s and latency percentiles of single-row POSTs (wrk, one thread)."""
    body_file = work / "body.json"
    body_file.write_bytes(body)
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("JSON {\\"p50\\": %d, \\"p99\\": %d, \\"errors\\": %d, '
        '\\"non2xx\\": %d}\\n", latency:percentile(50), latency:percentile(99), '
        "summary.errors.connect + summary.errors.read + summary.errors.write + "
        "summary.errors.timeout, summary.errors.status))\n"
        "end\n"
    )
    base = ["wrk", "-t1", f"-c{connections}", "-s", str(script), url]
    if warm:
        subprocess.run([*base[:1], "-d3s", *base[1:]], check=True, capture_output=True)
    out = subprocess.run(
        [*base[:1], f"-d{seconds}s", *base[1:]], check=True, capture_output=True, text=True
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no Requests/sec line:\n{out}")
    rps = float(found.group(1))
    stats = json.loads(out.split("JSON ", 1)[1].splitlines()[0])
    return {
        "requests_per_s": rps,
        "p50_ms": stats["p50"] / 1000,
        "p99_ms": stats["p99"] / 1000,
        "errors": stats["errors"] + stats["non2xx"],
    }


def time_batches(
    url: str, body: bytes, repeats: int, reference: Callable[[], object]
) -> tuple[float, float]:
    """Median seconds of a batch request (kept-alive connection, send to parsed answer) and of
    the in-process `reference` call, alternated so both see the same machine load.

    The standard library client adds the least client-side time to the measurement.
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    headers = {"Content-Type": "application/json"}

    def post() -> None:
        connection.request("POST", parts.path, body=body, headers=headers)
        response = connection.getresponse()
        content = response.read()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}: {content[:200]!r}")
        orjson.loads(content)

    served, local = [], []
    try:
        post()
        reference()
        for _ in range(repeats):
            started = time.perf_counter()
            post()
            served.append(time.perf_counter() - started)
            started = time.perf_counter()
            reference()
            local.append(time.perf_counter() - started)
    finally:
        connection.close()
    return statistics.median(served), statistics.median(local)


def add_version(uri: str) -> tuple[str, str]:
    """A second version of the benchmark model (the champion's model, registered again: its
    load costs what any version's does); returns (champion, new) version numbers."""
    client = MlflowClient(tracking_uri=uri)
    champion = client.get_model_version_by_alias(NAME, "champion")
    again = client.create_model_version(
        NAME, source=str(champion.source), run_id=champion.run_id, model_id=champion.model_id
    )
    return str(champion.version), str(again.version)


def flip_alias(
    uri: str, base: str, versions: tuple[str, str], swaps: int, spacing: float
) -> list[float]:
    """Move `champion` between the two versions `swaps` times, `spacing` s apart; per move,
    seconds until the service names the new version (NaN when it never did)."""
    client = MlflowClient(tracking_uri=uri)
    lags: list[float] = []
    with httpx.Client(base_url=base, timeout=10) as http:
        for swap in range(swaps):
            slot = time.monotonic() + spacing
            target = versions[(swap + 1) % 2]
            client.set_registered_model_alias(NAME, "champion", target)
            moved = time.monotonic()
            lag = float("nan")
            while time.monotonic() < slot + spacing:
                # the open-inference metadata: cheap, unlike /metadata's JSON Schema
                if http.get(f"/v2/models/{NAME}").json()["versions"] == [target]:
                    lag = time.monotonic() - moved
                    break
                time.sleep(0.02)
            lags.append(lag)
            time.sleep(max(0.0, slot - time.monotonic()))
    return lags


def measure_swaps(
    args: argparse.Namespace, uri: str, features: pd.DataFrame, work: Path, env: dict[str, str]
) -> dict[str, Any]:
    """p99 under wrk without swaps, then with `args.swaps` alias moves; pick-up time per move."""
    versions = add_version(uri)
    port = free_port()
    command = [sys.executable, "-m", "serving", "--model", NAME, "--port", str(port)]
    command += ["--workers", "1", "--poll-seconds", str(args.poll_seconds)]
    body = split_body(features.head(1))
    spacing = (args.seconds - 1) / args.swaps
    with server(command, env, f"http://127.0.0.1:{port}/v2/health/ready", work / "swaps.log"):
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/invocations"
        steady = run_wrk(url, body, args.seconds, args.connections, work)
        lags: list[float] = []
        flipper = threading.Thread(
            target=lambda: lags.extend(flip_alias(uri, base, versions, args.swaps, spacing))
        )
        flipper.start()
        swapping = run_wrk(url, body, args.seconds, args.connections, work, warm=False)
        flipper.join()
    return {
        "poll_seconds": args.poll_seconds,
        "swaps": args.swaps,
        "seconds_between_swaps": spacing,
        "without_swaps": steady,
        "during_swaps": swapping,
        "p99_ratio": swapping["p99_ms"] / steady["p99_ms"],
        "pickup_seconds": lags,
        "pickup_max_s": max(lags),
    }


def print_swaps(swaps: dict[str, Any]) -> None:
    steady, swapping = swaps["without_swaps"], swaps["during_swaps"]
    print(
        f"\nalias swaps: {swaps['swaps']} moves {swaps['seconds_between_swaps']:.1f} s apart, "
        f"poll every {swaps['poll_seconds']} s"
    )
    for label, r in (("without swaps", steady), ("during swaps", swapping)):
        print(
            f"{label:14} {r['requests_per_s']:9.0f} req/s  p50 {r['p50_ms']:7.2f} ms  "
            f"p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}"
        )
    lags = ", ".join(f"{lag:.2f}" for lag in swaps["pickup_seconds"])
    print(f"p99 during / without swaps: {swaps['p99_ratio']:.2f}x; pick-up seconds: {lags}")


def split_body(frame: pd.DataFrame) -> bytes:
    return orjson.dumps({"dataframe_split": frame.to_dict(orient="split", index=False)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--estimator", default="linear", help="a regression family of tasks.train")
    parser.add_argument("--swaps", type=int, default=10, help="alias moves under load; 0: none")
    parser.add_argument("--poll-seconds", type=float, default=1.0)
    parser.add_argument("--swaps-only", action="store_true", help="measure alias swaps alone")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    os.environ.update(ENV)
    RESULTS.mkdir(parents=True, exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        uri, features = register_model(work, args.estimator)
        env = {
            **os.environ,
            **ENV,
            "MLFLOW_TRACKING_URI": uri,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
        }
        ours_env = {**env, "MLOPS_SERVE_LOG_DIR": str(work / "prediction_log")}
        if args.swaps_only:
            swaps = measure_swaps(args, uri, features, work, ours_env)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            path = RESULTS / f"serving-swaps-{stamp}.json"
            path.write_text(json.dumps(swaps, indent=2))
            print_swaps(swaps)
            print(f"written to {path}")
            return
        single = split_body(features.head(1))
        batch_frame = pd.concat([features] * (args.batch_rows // len(features) + 1)).head(
            args.batch_rows
        )
        batch = split_body(batch_frame)
        loaded = mlflow.sklearn.load_model(f"models:/{NAME}@champion")
        results: dict[str, Any] = {
            "model": f"bikeshare {args.estimator} pipeline, {features.shape[1]} features",
            "connections": args.connections,
            "workers": args.workers,
            "seconds": args.seconds,
            "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg()[0],
        }
        port = free_port()
        ours = [
            sys.executable,
            "-m",
            "serving",
            "--model",
            NAME,
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--poll-seconds",
            "0",
        ]
        with server(ours, ours_env, f"http://127.0.0.1:{port}/v2/health/ready", work / "ours.log"):
            base = f"http://127.0.0.1:{port}"
            engine = httpx.get(f"{base}/metadata").json()["engine"]
            results["service_engine"] = engine
            results["service_invocations"] = run_wrk(
                f"{base}/invocations", single, args.seconds, args.connections, work
            )
            record = orjson.dumps({"records": features.head(1).to_dict(orient="records")})
            results["service_predict"] = run_wrk(
                f"{base}/predict", record, args.seconds, args.connections, work
            )
            results["service_batch_s"], results["in_process_batch_s"] = time_batches(
                f"{base}/invocations", batch, args.repeats, lambda: loaded.predict(batch_frame)
            )
        port = free_port()
        theirs = [
            str(Path(bin_dir) / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{NAME}@champion",
            "--env-manager",
            "local",
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-w",
            str(args.workers),
        ]
        with server(theirs, env, f"http://127.0.0.1:{port}/ping", work / "mlflow.log"):
            base = f"http://127.0.0.1:{port}"
            results["mlflow_invocations"] = run_wrk(
                f"{base}/invocations", single, args.seconds, args.connections, work
            )
            results["mlflow_batch_s"], _ = time_batches(
                f"{base}/invocations", batch, args.repeats, lambda: loaded.predict(batch_frame)
            )
        if args.swaps:
            results["swaps"] = measure_swaps(args, uri, features, work, ours_env)
    ours_rps = results["service_invocations"]["requests_per_s"]
    theirs_rps = results["mlflow_invocations"]["requests_per_s"]
    results["load_average_after"] = os.getloadavg()[0]
    results["speedup"] = ours_rps / theirs_rps
    results["batch_ratio"] = results["service_batch_s"] / results["in_process_batch_s"]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"serving-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    print_table(results, path)


def print_table(results: dict, path: Path) -> None:
    rows = [
        ("this service /invocations", results["service_invocations"]),
        ("this service /predict", results["service_predict"]),
        ("mlflow models serve /invocations", results["mlflow_invocations"]),
    ]
    print(
        f"\n{results['model']}; {results['connections']} connections, "
        f"{results['workers']} worker(s), {results['cpus']} CPUs, "
        f"engine {results['service_engine']}, load average "
        f"{results['load_average_before']:.1f} -> {results['load_average_after']:.1f}"
    )
    print(f"{'server':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for label, r in rows:
        rps, p50, p99 = r["requests_per_s"], r["p50_ms"], r["p99_ms"]
        print(f"{label:34} {rps:9.0f} {p50:8.2f} {p99:8.2f} {r['errors']:7d}")
    print(f"speed-up (req/s, /invocations): {results['speedup']:.1f}x")
    print(
        f"10k-row batch: in-process predict {results['in_process_batch_s'] * 1e3:.1f} ms, "
        f"service {results['service_batch_s'] * 1e3:.1f} ms (ratio {results['batch_ratio']:.2f}), "
        f"mlflow serve {results['mlflow_batch_s'] * 1e3:.1f} ms"
    )
    if "swaps" in results:
        print_swaps(results["swaps"])
    print(f"written to {path}")


if __name__ == "__main__":
    main()
