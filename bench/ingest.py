"""Benchmark: ingest + validation of a big CSV against pyarrow's own CSV-to-Parquet conversion.

A CSV of the example's schema (resampled rows with noise, written a million rows at a time) is
generated at each size. Each side runs in its own process, one after the other, on the same file:
(a) `pyarrow.csv.open_csv` into a `ParquetWriter`, nothing else; (b) the training flow's snapshot
and validation core (`take_snapshot`, `validate_snapshot_file`) against a copy of the GX project
whose suites are profiled on the file's first 250k rows. Wall time and peak RSS of each child.
Goal: (b) at most 2x (a)'s time and under 2 GB peak at every size.

    python -m bench.ingest --rows 1000000 5000000 20000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bench.child import run_child

ROOT = Path(__file__).resolve().parents[1]
GENERATE_ROWS = 1_000_000
REFERENCE_ROWS = 250_000  # the suites' row-count bounds (x0.1..x100) then admit 25k..25M rows
GOAL_RATIO, GOAL_PEAK_MIB = 2.0, 2048


def generate(rows: int, path: Path, seed: int = 0) -> None:
    """Write `rows` rows like the example to `path`, never more than a million in memory."""
    base = pd.read_csv(ROOT / "data" / "bikeshare" / "bikeshare_hourly_2011.csv")
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2011-01-01")
    with pacsv.CSVWriter(path, pa.Schema.from_pandas(base, preserve_index=False)) as writer:
        for offset in range(0, rows, GENERATE_ROWS):
            count = min(GENERATE_ROWS, rows - offset)
            frame = base.iloc[rng.integers(0, len(base), count)].reset_index(drop=True)
            for column in ("temp", "atemp", "hum", "windspeed"):
                frame[column] = (frame[column] + rng.normal(0, 0.02, count)).clip(0, 1).round(4)
            frame["bikers"] = (frame["bikers"] * rng.lognormal(0, 0.1, count)).round()
            frame["bikers"] = frame["bikers"].astype("int64")
            minutes = pd.to_timedelta(np.arange(offset, offset + count), unit="min")
            frame["timestamp"] = (start + minutes).strftime("%Y-%m-%dT%H:%M:%S")
            writer.write_table(pa.Table.from_pandas(frame, preserve_index=False))


def convert(csv: Path, out: Path) -> dict:
    """Side (a): pyarrow's own streaming CSV-to-Parquet conversion."""
    reader = pacsv.open_csv(csv)
    rows = 0
    with pq.ParquetWriter(out, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    return {"rows": rows}


def ingest_and_validate(csv: Path, case: Path) -> dict:
    """Side (b): the snapshot and validation the training flow's tasks call."""
    from prefect_mlops.config import load_config
    from prefect_mlops.expectations.chunked import validate_snapshot_file
    from prefect_mlops.settings import Settings
    from prefect_mlops.snapshots import take_snapshot
    from prefect_mlops.sources import CsvSource

    settings = Settings(gx_root=case / "great_expectations", artifact_root=case / "artifacts")
    config = load_config(ROOT / "configs" / "bikeshare.yaml")
    started = time.perf_counter()
    snapshot = take_snapshot(CsvSource(path=str(csv)), settings.snapshot_dir, settings=settings)
    ingest_seconds = time.perf_counter() - started
    summary = validate_snapshot_file(
        snapshot.uri, config, settings, "training", snapshot.fingerprint, _stderr
    )
    return {
        "rows": snapshot.rows,
        "fingerprint": snapshot.fingerprint,
        "validation_success": summary.success,
        "failed": [f.model_dump() for f in summary.failed],
        "ingest_seconds": round(ingest_seconds, 2),
        "validate_seconds": round(time.perf_counter() - started - ingest_seconds, 2),
    }


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare_gx(csv: Path, case: Path) -> None:
    """A private GX project with the example's suites profiled on the file's first rows."""
    from prefect_mlops.config import load_config
    from prefect_mlops.expectations.profile import init_suites
    from prefect_mlops.settings import Settings

    shutil.copytree(
        ROOT / "great_expectations",
        case / "great_expectations",
        ignore=shutil.ignore_patterns("uncommitted"),
    )
    settings = Settings(gx_root=case / "great_expectations", artifact_root=case / "artifacts")
    config = load_config(ROOT / "configs" / "bikeshare.yaml")
    init_suites(config, settings, pd.read_csv(csv, nrows=REFERENCE_ROWS))


def measure(rows: int, work: Path) -> dict:
    """Generate one size, run both sides, delete what was generated."""
    csv = work / f"rows-{rows}.csv"
    started = time.perf_counter()
    generate(rows, csv)
    print(
        f"{rows:,} rows: {csv.stat().st_size / 2**20:,.0f} MiB CSV generated in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    case = work / f"case-{rows}"
    case.mkdir()
    prepare_gx(csv, case)
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "true"}
    sides = {}
    for side, args in (
        ("pyarrow_conversion", ["convert", str(csv), str(work / "converted.parquet")]),
        ("ingest_and_validation", ["ours", str(csv), str(case)]),
    ):
        answer, seconds, peak = run_child("bench.ingest", ["--child", *args], env, work / "log")
        sides[side] = {"seconds": round(seconds, 2), "peak_rss_mib": round(peak), **answer}
        print(f"  {side}: {seconds:.1f} s, peak {peak:,.0f} MiB", flush=True)
    ours, theirs = sides["ingest_and_validation"], sides["pyarrow_conversion"]
    ratio = ours["seconds"] / theirs["seconds"]
    result = {
        "rows": rows,
        "csv_mib": round(csv.stat().st_size / 2**20),
        **sides,
        "time_ratio": round(ratio, 2),
        "meets_goal": ratio <= GOAL_RATIO and ours["peak_rss_mib"] < GOAL_PEAK_MIB,
    }
    print(f"  ratio {ratio:.2f}x; goal met: {result['meets_goal']}", flush=True)
    csv.unlink()
    shutil.rmtree(case)
    (work / "converted.parquet").unlink(missing_ok=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "CSV", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, csv, out = args.child
        answer = (
            convert(Path(csv), Path(out))
            if side == "convert"
            else ingest_and_validate(Path(csv), Path(out))
        )
        print(json.dumps(answer))
        return
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        results = [measure(rows, Path(tmp)) for rows in args.rows]
    out = ROOT / "bench" / "results" / f"ingest-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
