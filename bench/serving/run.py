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

Rollouts (`--rollouts`, `--rollouts-only` for this part alone): one service, a second version of
the same model as the challenger (so only the routing is measured, not a slower model), wrk for
`--seconds` per traffic mode, modes interleaved for `--rounds` rounds (each round starting one mode
later; median per mode): plain
(no rollout), shadow, canary (`--canary-share`) and A/B (share 0.5, keyed). Every mode's requests
carry an `X-Rollout-Key` header (1,000 callers), so the load is the same. Goals: shadow costs the
champion at most +1 ms single-row p99 and -10% requests/s; canary and A/B within noise of plain.
CPU per answered request is the service process's; `worker` is its children's (the shadow
worker, a process of its own at a lower priority).
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
def server(
    command: list[str], env: dict[str, str], ready_url: str, log: Path
) -> Iterator[subprocess.Popen]:
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
            yield process
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def run_wrk(
    url: str,
    body: bytes,
    seconds: int,
    connections: int,
    work: Path,
    warm: bool = True,
    keyed: bool = False,
) -> dict[str, float]:
    """Requests/s and latency percentiles of single-row POSTs (wrk, one thread); `keyed`: each
    request names one of 1,000 callers in `X-Rollout-Key`."""
    body_file = work / "body.json"
    body_file.write_bytes(body)
    script = work / "post.lua"
    per_request = (
        "local n = 0\n"
        "request = function()\n  n = n + 1\n"
        '  wrk.headers["X-Rollout-Key"] = "caller-" .. (n % 1000)\n'
        "  return wrk.format()\nend\n"
        if keyed
        else ""
    )
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        + per_request
        + "done = function(summary, latency, requests)\n"
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
    """p99 under wrk without swaps and with `args.swaps` alias moves, interleaved for
    `args.rounds` rounds (medians: one run of each is at the mercy of whatever else the machine
    does); pick-up time per move."""
    versions = add_version(uri)
    port = free_port()
    command = [sys.executable, "-m", "serving", "--model", NAME, "--port", str(port)]
    command += ["--workers", "1", "--poll-seconds", str(args.poll_seconds)]
    body = split_body(features.head(1))
    spacing = (args.seconds - 1) / args.swaps
    steady_runs: list[dict[str, float]] = []
    swapping_runs: list[dict[str, float]] = []
    lags: list[float] = []
    with server(command, env, f"http://127.0.0.1:{port}/v2/health/ready", work / "swaps.log"):
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/invocations"
        run_wrk(url, body, 2, args.connections, work, warm=False)
        for _ in range(args.rounds):
            steady_runs.append(run_wrk(url, body, args.seconds, args.connections, work, False))
            flipper = threading.Thread(
                target=lambda: lags.extend(flip_alias(uri, base, versions, args.swaps, spacing))
            )
            flipper.start()
            swapping_runs.append(run_wrk(url, body, args.seconds, args.connections, work, False))
            flipper.join()
    steady, swapping = _median_run(steady_runs), _median_run(swapping_runs)
    return {
        "poll_seconds": args.poll_seconds,
        "swaps": args.swaps,
        "rounds": args.rounds,
        "seconds_between_swaps": spacing,
        "without_swaps": steady,
        "during_swaps": swapping,
        "runs_without_swaps": steady_runs,
        "runs_during_swaps": swapping_runs,
        "p99_ratio": swapping["p99_ms"] / steady["p99_ms"],
        "p99_ratios_by_round": [
            w["p99_ms"] / s["p99_ms"] for s, w in zip(steady_runs, swapping_runs, strict=True)
        ],
        "pickup_seconds": lags,
        "pickup_max_s": max(lags),
    }


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the runs (errors summed)."""
    return {
        key: sum(r[key] for r in runs)
        if key == "errors"
        else statistics.median(r[key] for r in runs)
        for key in runs[0]
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
    rounds = ", ".join(f"{r:.2f}" for r in swaps["p99_ratios_by_round"])
    print(
        f"p99 during / without swaps: {swaps['p99_ratio']:.2f}x (medians of {swaps['rounds']} "
        f"interleaved rounds; by round {rounds}); pick-up seconds: {lags}"
    )


ROLLOUT_MODES = ("plain", "shadow", "canary", "ab")
ROLLOUT_POLL_SECONDS = 1.0


def set_traffic(uri: str, base: str, mode: str, challenger: str, share: float) -> None:
    """Write the rollout for `mode` (none for plain) and wait until the service serves it."""
    from prefect_mlops.rollout import RolloutState, clear_rollout, write_rollout

    client = MlflowClient(tracking_uri=uri)
    if mode == "plain":
        clear_rollout(client, NAME)
    else:
        shares = {"shadow": 0.0, "canary": share, "ab": 0.5}
        key = "customer_id" if mode == "ab" else None
        state = RolloutState(version=challenger, mode=mode, share=shares[mode], key=key)
        write_rollout(client, NAME, state)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        served = httpx.get(f"{base}/health", timeout=10).json()["rollout"]
        if (served is None and mode == "plain") or (
            served is not None
            and served["mode"] == mode
            and served["challenger_loaded"]
            and (mode != "shadow" or served["shadow_worker"]["ready"])
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the service did not take the {mode} rollout within 120 s")


def arm_counts(base: str) -> dict[str, float]:
    """Requests per arm and shadow copies dropped, from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics").text):
        for sample in family.samples:
            if sample.name == "mlops_serve_arm_requests_total":
                key = f"{sample.labels['arm']}_{sample.labels['outcome']}"
                counts[key] = counts.get(key, 0.0) + sample.value
            elif sample.name == "mlops_serve_shadow_dropped_total":
                counts["shadow_dropped"] = sample.value
    return counts


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc): what a mode costs the
    service, whatever else the machine runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_cpu_seconds(pid: int) -> float:
    """CPU time so far of a process's running children (the shadow worker): what shadow mode
    costs beside the service, on whatever core the scheduler gives it."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                total += cpu_seconds(int(child))
            except FileNotFoundError:  # exited meanwhile
                continue
    return total


def measure_rollouts(
    args: argparse.Namespace, uri: str, features: pd.DataFrame, work: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Per traffic mode, the champion's single-row requests/s and p99 under wrk, interleaved."""
    _, challenger = add_version(uri)
    port = free_port()
    command = [sys.executable, "-m", "serving", "--model", NAME, "--port", str(port)]
    # The registry look-up every poll costs the service more with a rollout than without (the
    # rollout's tag and the challenger's version too): at 0.2 s it cost every rollout mode about
    # 8% of plain's requests/s; a second is still fast to switch modes (the default is 30 s).
    command += ["--workers", "1", "--poll-seconds", str(ROLLOUT_POLL_SECONDS)]
    body = split_body(features.head(1))
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in ROLLOUT_MODES}
    arms: dict[str, dict[str, float]] = {}
    ready = f"http://127.0.0.1:{port}/v2/health/ready"
    with server(command, env, ready, work / "rollouts.log") as process:
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/invocations"
        for round_ in range(args.rounds):
            # each round starts one mode later: no mode always runs first (or last) in a round
            start = round_ % len(ROLLOUT_MODES)
            for mode in ROLLOUT_MODES[start:] + ROLLOUT_MODES[:start]:
                set_traffic(uri, base, mode, challenger, args.canary_share)
                run_wrk(url, body, 2, args.connections, work, warm=False, keyed=True)
                before, cpu = arm_counts(base), cpu_seconds(process.pid)
                children = child_cpu_seconds(process.pid)
                run = run_wrk(url, body, args.seconds, args.connections, work, False, True)
                time.sleep(0.3)  # the shadow's last batch and the log's flush inside the window
                spent = cpu_seconds(process.pid) - cpu
                children = child_cpu_seconds(process.pid) - children
                after = arm_counts(base)
                arms[mode] = {k: after[k] - before.get(k, 0.0) for k in after}
                served = arms[mode].get("champion_ok", 0.0) + arms[mode].get("challenger_ok", 0.0)
                run["cpu_us_per_request"] = spent / max(served, 1.0) * 1e6
                run["worker_cpu_us_per_request"] = max(children, 0.0) / max(served, 1.0) * 1e6
                runs[mode].append(run)
        set_traffic(uri, base, "plain", challenger, args.canary_share)
    summary: dict[str, Any] = {}
    for mode, results in runs.items():
        summary[mode] = {
            "requests_per_s": statistics.median(r["requests_per_s"] for r in results),
            "p50_ms": statistics.median(r["p50_ms"] for r in results),
            "p99_ms": statistics.median(r["p99_ms"] for r in results),
            "errors": sum(r["errors"] for r in results),
            "cpu_us_per_request": statistics.median(r["cpu_us_per_request"] for r in results),
            "worker_cpu_us_per_request": statistics.median(
                r["worker_cpu_us_per_request"] for r in results
            ),
            "runs": results,
            "arms_last_run": arms.get(mode, {}),
        }
    plain = summary["plain"]
    for mode in ROLLOUT_MODES[1:]:
        summary[mode]["rps_ratio"] = summary[mode]["requests_per_s"] / plain["requests_per_s"]
        summary[mode]["p99_delta_ms"] = summary[mode]["p99_ms"] - plain["p99_ms"]
        summary[mode]["cpu_ratio"] = (
            summary[mode]["cpu_us_per_request"] / plain["cpu_us_per_request"]
        )
    return {
        "rounds": args.rounds,
        "seconds": args.seconds,
        "connections": args.connections,
        "canary_share": args.canary_share,
        "modes": summary,
    }


def print_rollouts(rollouts: dict[str, Any]) -> None:
    print(
        f"\nrollouts: {rollouts['rounds']} interleaved round(s) of {rollouts['seconds']} s per "
        f"mode, {rollouts['connections']} connections, canary share {rollouts['canary_share']}"
    )
    print(
        f"{'mode':8} {'req/s':>9} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} {'d p99':>7} "
        f"{'CPU us/req':>10} {'ratio':>6} {'worker':>6}  arms"
    )
    for mode, r in rollouts["modes"].items():
        ratio = f"{r['rps_ratio']:.3f}" if "rps_ratio" in r else "-"
        delta = f"{r['p99_delta_ms']:+.2f}" if "p99_delta_ms" in r else "-"
        cpu = f"{r['cpu_ratio']:.3f}" if "cpu_ratio" in r else "-"
        arms = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["arms_last_run"].items()) if v)
        print(
            f"{mode:8} {r['requests_per_s']:9.0f} {ratio:>6} {r['p50_ms']:8.2f} "
            f"{r['p99_ms']:8.2f} {delta:>7} {r['cpu_us_per_request']:10.0f} {cpu:>6} "
            f"{r['worker_cpu_us_per_request']:6.0f}  "
            f"{arms}; errors {r['errors']}"
        )


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
    parser.add_argument("--rollouts", action="store_true", help="also compare traffic modes")
    parser.add_argument(
        "--rollouts-only", action="store_true", help="compare plain, shadow, canary and A/B alone"
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the modes")
    parser.add_argument("--canary-share", type=float, default=0.1)
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
        if args.rollouts_only:
            rollouts = measure_rollouts(args, uri, features, work, ours_env)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            path = RESULTS / f"serving-rollouts-{stamp}.json"
            path.write_text(json.dumps(rollouts, indent=2))
            print_rollouts(rollouts)
            print(f"written to {path}")
            return
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
        if args.rollouts:
            results["rollouts"] = measure_rollouts(args, uri, features, work, ours_env)
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
    if "rollouts" in results:
        print_rollouts(results["rollouts"])
    print(f"written to {path}")


if __name__ == "__main__":
    main()
