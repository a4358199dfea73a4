"""Benchmark: a model's monitoring window read from a prediction log it shares with another model.

Goal (issue 11): reading a 1M-row window of model `a` from a log that also holds 1M rows of
model `b` costs at most 10% more than reading it from a log holding `a` alone. Both logs are
written the way the service writes (`ParquetStore`, 50k-row files, `a` with the 20 features of
`bench.monitoring`, `b` with 12 others); the window is read as the monitoring flow reads it
(`prefect_mlops.monitoring.window.log_frame`, last 24 hours, online rows), alternating between the
two logs, and the median of each side is compared. The rest of a monitoring run (scoring,
Evidently) sees the same frame either way, so the read is where a shared log could cost.

    .venv/bin/python -m bench.log_two_models   # table on stdout, bench/results/log_two_models.json

Seen 2026-12-01 (2 cores shared with other jobs, load ~10): median 12.6 s alone, 11.5 s shared,
ratio 0.91 (the shared log's other model is never opened: only `a`'s folders are listed).
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.monitoring import bench_config, synthesise
from prefect_mlops.config import PipelineConfig
from prefect_mlops.monitoring import WindowSpec
from prefect_mlops.monitoring.window import log_frame
from prefect_mlops.prediction_log import ParquetStore, PredictionRecord

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "log_two_models.json"
ROWS = 1_000_000
CHUNK_ROWS = 50_000
REPEATS = 3
GOAL_RATIO = 1.10


def write_model(store: ParquetStore, name: str, frame: pd.DataFrame) -> None:
    """`frame`'s rows logged as online predictions of `name`, one file per chunk."""
    now = time.time()
    for start in range(0, len(frame), CHUNK_ROWS):
        chunk = frame.iloc[start : start + CHUNK_ROWS]
        columns = {str(c): chunk[c].tolist() for c in chunk.columns}
        predictions = np.zeros(len(chunk))
        record = PredictionRecord(f"{name}-{start}", now, name, "1", columns, predictions, None)
        store.append_predictions([record])


def other_model(rows: int) -> pd.DataFrame:
    """Model `b`: 12 features of other names and types than `a`'s."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({f"z{i:02d}": rng.integers(0, 100, rows) for i in range(8)})
    for i in range(4):
        frame[f"kind{i}"] = np.array(["p", "q", "r"])[rng.integers(0, 3, rows)]
    return frame


def read_seconds(config: PipelineConfig, directory: Path) -> tuple[float, int]:
    started = time.perf_counter()
    frame = log_frame(WindowSpec(hours=24), "a", config, directory)
    return time.perf_counter() - started, len(frame)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-log-"))
    try:
        config = PipelineConfig.model_validate(bench_config(work / "unused.parquet"))
        features_a = synthesise(ROWS, seed=1, shift=False).drop(columns=["y"])
        alone, shared = work / "alone", work / "shared"
        write_model(ParquetStore(alone), "a", features_a)
        shutil.copytree(alone, shared)
        write_model(ParquetStore(shared), "b", other_model(ROWS))
        times: dict[str, list[float]] = {"alone": [], "shared": []}
        for _ in range(REPEATS):
            for side, directory in (("alone", alone), ("shared", shared)):
                seconds, rows = read_seconds(config, directory)
                assert rows == ROWS, f"{side}: {rows} rows read, {ROWS} expected"
                times[side].append(seconds)
        median = {side: statistics.median(values) for side, values in times.items()}
        ratio = median["shared"] / median["alone"]
        result = {
            "rows_per_model": ROWS,
            "seconds": times,
            "median_seconds": median,
            "ratio": ratio,
            "goal_ratio": GOAL_RATIO,
            "met": ratio <= GOAL_RATIO,
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2))
        print("| log | median read of a's 1M-row window |")
        print("|---|---|")
        print(f"| a alone | {median['alone']:.2f} s |")
        print(f"| a + 1M rows of b | {median['shared']:.2f} s |")
        print(f"ratio {ratio:.3f} (goal <= {GOAL_RATIO}): {'met' if result['met'] else 'MISSED'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
