"""Benchmark: the monitoring flow on a 1M-row window with 20 features (goal <= 60 s, <= 4 GB).

A model is trained (training flow, one linear candidate) on 100k synthetic rows; the current
window is 1M rows of the same generator with 12 of the 20 features shifted. The monitoring flow
runs in a child process against a `prefect server` on loopback (the steady state of a
deployment); wall time and peak RSS (`os.wait4` ru_maxrss) are measured for that child. The flow
gives Evidently a seeded sample of each side (`monitoring.max_rows`); a second child recomputes
the drift on every row and the drift decision must be the same.

    .venv/bin/python -m bench.monitoring          # table on stdout, bench/results/monitoring.json
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bench.child import prepare_case, run_child
from bench.training import start_prefect_server

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "monitoring.json"
REFERENCE_ROWS = 100_000
WINDOW_ROWS = 1_000_000
NUMERIC = [f"x{i:02d}" for i in range(15)]
CATEGORICAL = [f"c{i}" for i in range(5)]
SHIFTED = [*NUMERIC[:9], *CATEGORICAL[:3]]  # 12 of 20 features move
GOAL_SECONDS, GOAL_MIB = 60.0, 4096.0


def synthesise(rows: int, seed: int, shift: bool) -> pd.DataFrame:
    """20 features (15 numeric, 5 categorical) and a regression target; `shift` moves 12."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(i * 0.1, 1.0, rows) for i, c in enumerate(NUMERIC)})
    levels = np.array(["a", "b", "c", "d"])
    for column in CATEGORICAL:
        frame[column] = levels[rng.choice(4, size=rows, p=[0.4, 0.3, 0.2, 0.1])]
    if shift:
        for column in SHIFTED:
            if column in NUMERIC:
                frame[column] = frame[column] + 0.5
            else:
                frame[column] = levels[rng.choice(4, size=rows, p=[0.1, 0.2, 0.3, 0.4])]
    weights = np.linspace(1.0, 0.1, len(NUMERIC))
    signal = frame[NUMERIC].to_numpy() @ weights + (frame["c0"] == "a") * 2.0
    frame["y"] = signal + rng.normal(0, 0.5, rows)
    return frame


def bench_config(data: Path) -> dict:
    return {
        "name": "bench-monitoring",
        "task": "regression",
        "target": "y",
        "source": {"kind": "parquet", "path": str(data)},
        "categorical_features": CATEGORICAL,
        "split": {"strategy": "random", "test_size": 0.2},
        "tuning": {"cv_folds": 2, "max_configs_per_candidate": 1},
        "candidates": [{"name": "ridge", "estimator": "linear", "search_space": {"alpha": [1.0]}}],
        "gate": {"primary_metric": "rmse", "thresholds": {"r2": {"min": 0.5}}},
        "validation": {"suite": "bench", "policy": "fail"},
        "registered_model_name": "bench-monitoring",
        "monitoring": {"drift_share": 0.5, "max_rows": 200_000},
    }


def child(mode: str, config_path: str, window_path: str) -> None:
    """Inside a child process: train, monitor, or recompute the drift on every row."""
    if mode == "train":
        from flows.training import TrainingParams, training_flow

        training_flow(TrainingParams(config_path=config_path))
        print(json.dumps({}))
    elif mode == "monitor":
        from flows.monitoring import MonitoringParams, monitoring_flow
        from prefect_mlops.monitoring import WindowSpec

        summary = monitoring_flow(
            MonitoringParams(
                config_path=config_path,
                window=WindowSpec(dataset_path=window_path),
                emit_events=False,
            )
        )
        print(summary.model_dump_json())
    else:  # full: the same Evidently computation on every row, no sampling
        from prefect_mlops.config import load_config
        from prefect_mlops.monitoring import ScoredRefs
        from prefect_mlops.monitoring.decision import decide
        from prefect_mlops.monitoring.drift import compute_drift
        from prefect_mlops.monitoring.scoring import scored_frames
        from prefect_mlops.results import ValidationSummary

        config = load_config(config_path)
        config = config.model_copy(
            update={"monitoring": config.monitoring.model_copy(update={"max_rows": None})}
        )
        reference, current = scored_frames(
            ScoredRefs.model_validate_json(Path(window_path).read_text())
        )
        report, *_ = compute_drift(reference, current, config, [], {})
        passed = ValidationSummary(success=True, checkpoint="full", evaluated=0)
        decision = decide(report, passed, config.monitoring)
        print(
            json.dumps(
                {
                    "drifted_columns": report.drifted_columns,
                    "drifted_share": report.drifted_share,
                    "prediction_drift": report.prediction.drifted if report.prediction else None,
                    "events": decision.events,
                }
            )
        )


def measure(mode: str, case: Path, env: dict[str, str], *args: str) -> tuple[dict, float, float]:
    """Run one child: its last stdout line as JSON, wall seconds and peak RSS in MiB."""
    return run_child("bench.monitoring", ["--child", mode, *args], env, case / f"{mode}.log")


def run() -> dict:

    work = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    env = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
    }
    server, api_url = start_prefect_server(work / "prefect", env)
    try:
        reference, window = work / "reference.parquet", work / "window.parquet"
        synthesise(REFERENCE_ROWS, seed=0, shift=False).to_parquet(reference, index=False)
        synthesise(WINDOW_ROWS, seed=1, shift=True).to_parquet(window, index=False)
        config_path, env = prepare_case(work, bench_config(reference), reference, api_url, env)
        measure("train", work, env, str(config_path), "")
        summary, seconds, peak = measure("monitor", work, env, str(config_path), str(window))
        folder = Path(summary["report_uri"]).parent
        scored = work / "scored.json"
        scored.write_text(
            json.dumps(
                {  # what the flow's score_windows wrote (a ScoredRefs)
                    "reference_uri": summary["reference_snapshot"],
                    "current_uri": str(folder / "current.parquet"),
                    "reference_predictions_uri": str(folder / "reference-predictions.parquet"),
                    "current_predictions_uri": str(folder / "current-predictions.parquet"),
                    "reference_rows": REFERENCE_ROWS,
                    "current_rows": WINDOW_ROWS,
                    "prediction_source": "model",
                }
            )
        )
        full, full_seconds, full_peak = measure("full", work, env, str(config_path), str(scored))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    sampled_events = [b["event"] for b in summary["decision"]["breaches"]]
    sampled_events = list(dict.fromkeys(e for e in sampled_events if "data-invalid" not in e))
    result = {
        "window_rows": WINDOW_ROWS,
        "reference_rows": REFERENCE_ROWS,
        "features": len(NUMERIC) + len(CATEGORICAL),
        "evidently_max_rows": bench_config(reference)["monitoring"]["max_rows"],
        "flow_seconds": seconds,
        "flow_peak_mib": peak,
        "decision": summary["decision"]["outcome"],
        "drifted_columns": summary["drifted_columns"],
        "drifted_share": summary["drifted_share"],
        "prediction_drift": summary["prediction_drift"],
        "full_drifted_columns": full["drifted_columns"],
        "full_drifted_share": full["drifted_share"],
        "full_prediction_drift": full["prediction_drift"],
        "full_seconds": full_seconds,
        "full_peak_mib": full_peak,
        "same_decision": sampled_events == full["events"]
        and sorted(summary["drifted_columns"]) == sorted(full["drifted_columns"])
        and summary["prediction_drift"] == full["prediction_drift"],
        "expected_drifted": sorted(SHIFTED),
        "goal_met": seconds <= GOAL_SECONDS and peak <= GOAL_MIB,
    }
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    result = run()
    rows = [
        (
            "monitoring flow, 1M x 20 (Evidently on 200k)",
            result["flow_seconds"],
            result["flow_peak_mib"],
        ),
        ("Evidently drift on every row (check)", result["full_seconds"], result["full_peak_mib"]),
    ]
    print(f"{'run':<45} {'seconds':>8} {'peak MiB':>9}")
    for name, seconds, mib in rows:
        print(f"{name:<45} {seconds:8.1f} {mib:9.0f}")
    print(
        f"decision {result['decision']}; drifted {len(result['drifted_columns'])}/20 "
        f"(full: {len(result['full_drifted_columns'])}/20); prediction drift "
        f"{result['prediction_drift']} (full: {result['full_prediction_drift']}); "
        f"same decision: {result['same_decision']}; goal (<= 60 s, <= 4 GiB) met: "
        f"{result['goal_met']}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
