"""Benchmark: the training flow against a bare scikit-learn script doing the same fit.

Rows are synthesised from the bike-sharing example's schema (resampled rows with noise) at each
size; both sides read the same Parquet file, run the same candidates with the same
cross-validation, refit the best and score the holdout. Each side runs in its own process, side by
side in one run, so wall time and peak memory (max RSS) are comparable. The flow talks to a real
`prefect server` on loopback started once for the benchmark (the steady state of a deployment).
The flow runs twice: candidates side by side (`tuning.parallel_candidates` = cores, the default
below 250k training rows) and one at a time (`parallel_candidates: 1`, each candidate on every core,
memory of one candidate; the default from 250k training rows on, so at 1M rows).

    python -m bench.training                 # 10k, 100k, 1M rows
    python -m bench.training --rows 10000    # one size
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bench.child import prepare_case, run_child

ROOT = Path(__file__).resolve().parents[1]
SIZES = (10_000, 100_000, 1_000_000)
CANDIDATES = [
    {"name": "ridge", "estimator": "linear", "search_space": {"alpha": [1.0]}},
    {
        "name": "hist_gradient_boosting",
        "estimator": "hist_gradient_boosting",
        "params": {"max_iter": 100},
    },
]


def synthesise(rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` rows shaped like the example: resampled, numeric columns jittered."""
    base = pd.read_csv(ROOT / "data" / "bikeshare" / "bikeshare_hourly_2011.csv")
    rng = np.random.default_rng(seed)
    frame = base.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    for column in ("temp", "atemp", "hum", "windspeed"):
        frame[column] = (frame[column] + rng.normal(0, 0.02, rows)).clip(0, 1)
    scale = rng.lognormal(0, 0.1, rows)
    frame["bikers"] = (frame["bikers"] * scale).round().astype("int64")
    start = pd.Timestamp("2011-01-01")
    frame["timestamp"] = (start + pd.to_timedelta(np.arange(rows), unit="min")).astype(str)
    return frame


def bench_config(data: Path) -> dict:
    raw = yaml.safe_load((ROOT / "configs" / "bikeshare.yaml").read_text())
    raw["source"] = {"kind": "parquet", "path": str(data)}
    raw["candidates"] = CANDIDATES
    raw["tuning"] = {"cv_folds": 3, "max_configs_per_candidate": 1}
    raw["gate"]["thresholds"] = {}
    return raw


def bare_fit(config_path: str) -> None:
    """The same work with pandas and scikit-learn only (no project import, no Prefect/MLflow/GX):
    time split, 3-fold time-series CV of the same two candidates, refit the best, score."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.metrics import root_mean_squared_error
    from sklearn.model_selection import TimeSeriesSplit, cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    config = yaml.safe_load(Path(config_path).read_text())
    frame = pd.read_parquet(config["source"]["path"])
    frame = frame.iloc[pd.to_datetime(frame["timestamp"]).argsort(kind="stable")]
    cut = len(frame) - round(len(frame) * config["split"]["test_size"])
    train, holdout = frame.iloc[:cut], frame.iloc[cut:]
    categorical = config["categorical_features"]
    dropped = {config["target"], "timestamp", *config["exclude"]}
    numeric = [c for c in frame.columns if c not in dropped and c not in categorical]
    features = [*numeric, *categorical]

    def model(estimator):
        to_text = FunctionTransformer(lambda f: f.astype(str).where(f.notna(), np.nan))
        preprocess = ColumnTransformer(
            [
                (
                    "numeric",
                    Pipeline(
                        [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                    ),
                    numeric,
                ),
                (
                    "categorical",
                    Pipeline(
                        [
                            ("to_text", to_text),
                            (
                                "impute",
                                SimpleImputer(strategy="constant", fill_value="__missing__"),
                            ),
                            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                        ]
                    ),
                    categorical,
                ),
            ]
        )
        return Pipeline([("preprocess", preprocess), ("model", estimator)])

    candidates = [
        Ridge(alpha=1.0, random_state=config["seed"]),
        HistGradientBoostingRegressor(max_iter=100, random_state=config["seed"]),
    ]
    cv = TimeSeriesSplit(n_splits=config["tuning"]["cv_folds"])
    scores = [
        cross_val_score(
            model(c),
            train[features],
            train[config["target"]],
            cv=cv,
            scoring="neg_root_mean_squared_error",
        ).mean()
        for c in candidates
    ]
    best = model(candidates[int(np.argmax(scores))])
    best.fit(train[features], train[config["target"]])
    rmse = root_mean_squared_error(holdout[config["target"]], best.predict(holdout[features]))
    print(json.dumps({"rmse": float(rmse)}))


def flow_fit(config_path: str) -> None:
    """The training flow, in-process, against the benchmark's Prefect server."""
    from flows.training import TrainingParams, training_flow

    result = training_flow(TrainingParams(config_path=config_path))
    print(json.dumps(result.evaluation.metrics if result.evaluation else {}))


def measure(mode: str, config_path: Path, env: dict[str, str]) -> dict[str, float]:
    """Run one side in a child process: wall seconds and peak RSS in MiB."""
    log = config_path.parent / f"{mode}.log"
    metrics, seconds, peak = run_child(
        "bench.training", ["--child", mode, str(config_path)], env, log
    )
    return {"seconds": seconds, "peak_mib": peak, "rmse": metrics["rmse"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_prefect_server(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={
            **env,
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_TASKS_TAG_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError("prefect server did not become healthy within 120 s")


def parallel_default(rows: int) -> int:
    """The flow's default `parallel_candidates` for this many rows (its training part)."""
    from prefect_mlops.estimators import (
        default_parallel_candidates,  # not in the bare child's imports
    )

    holdout = round(rows * bench_config(Path())["split"]["test_size"])
    return default_parallel_candidates(rows - holdout)


def run(sizes: list[int]) -> list[dict]:

    work = Path(tempfile.mkdtemp(prefix="bench-training-"))
    base_env = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "GX_ANALYTICS_ENABLED": "false",
    }
    server, api_url = start_prefect_server(work / "prefect", base_env)
    rows_out = []
    try:
        for rows in sizes:
            case = work / str(rows)
            case.mkdir()
            data = case / "data.parquet"
            synthesise(rows).to_parquet(data, index=False)
            side_by_side = bench_config(data)
            side_by_side["tuning"]["parallel_candidates"] = os.cpu_count() or 1
            config_path, env = prepare_case(case, side_by_side, data, api_url, base_env)
            sequential = bench_config(data)
            sequential["tuning"]["parallel_candidates"] = 1
            seq_path = case / "config-sequential.yaml"
            seq_path.write_text(yaml.safe_dump(sequential))
            bare = measure("bare", config_path, env)
            flow = measure("flow", config_path, env)
            flow_seq = measure("flow", seq_path, env)
            row = {
                "rows": rows,
                "bare_s": bare["seconds"],
                "flow_s": flow["seconds"],
                "time_ratio": flow["seconds"] / bare["seconds"],
                "bare_mib": bare["peak_mib"],
                "flow_mib": flow["peak_mib"],
                "memory_ratio": flow["peak_mib"] / bare["peak_mib"],
                "flow_seq_s": flow_seq["seconds"],
                "flow_seq_mib": flow_seq["peak_mib"],
                "seq_time_ratio": flow_seq["seconds"] / bare["seconds"],
                "seq_memory_ratio": flow_seq["peak_mib"] / bare["peak_mib"],
                "default": "one at a time" if parallel_default(rows) == 1 else "side by side",
                "same_rmse": abs(bare["rmse"] - flow["rmse"]) < 1e-9 * max(1, bare["rmse"])
                and abs(bare["rmse"] - flow_seq["rmse"]) < 1e-9 * max(1, bare["rmse"]),
            }
            rows_out.append(row)
            print(
                f"{rows:>9,} rows  bare {bare['seconds']:7.1f} s {bare['peak_mib']:7.0f} MiB  "
                f"flow side by side {flow['seconds']:7.1f} s {flow['peak_mib']:7.0f} MiB  "
                f"time x{row['time_ratio']:.2f}  memory x{row['memory_ratio']:.2f}  |  "
                f"one at a time {flow_seq['seconds']:7.1f} s "
                f"{flow_seq['peak_mib']:7.0f} MiB  time x{row['seq_time_ratio']:.2f}  "
                f"memory x{row['seq_memory_ratio']:.2f}  "
                f"(default: {row['default']})  same rmse: {row['same_rmse']}",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return rows_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="size(s) to run")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, config_path = args.child
        (bare_fit if mode == "bare" else flow_fit)(config_path)
        return
    results = run(args.rows or list(SIZES))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "training.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
