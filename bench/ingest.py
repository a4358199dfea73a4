"""Benchmark: ingest + validation of a big CSV against pyarrow's own CSV-to-Parquet conversion.

A CSV of the example's schema (resampled rows with noise, written a million rows at a time) is
generated at each size. Each round runs three processes, one after the other, on the same file:
(a) `pyarrow.csv.open_csv` into a `ParquetWriter`, nothing else (the process imports pyarrow
only); (b) the training flow's snapshot and validation core (`take_snapshot`,
`validate_snapshot_file`) against a copy of the GX project whose suites are profiled on the
file's first 250k rows, as a one-shot process would run it: GX imported and the checkpoint
opened on a thread while the CSV streams (`expectations.background`); (c) the same core in a
process that imports everything first, as a flow's process has when its tasks run.

Two comparisons: a cold process (wall time of (b)'s whole process against (a)'s whole
process; (c)'s whole process is reported beside it, the same with GX imported in line) and the
work in-process (the snapshot and validation in (c) after its imports, against the conversion
in (a) after its imports). Peak RSS of each process. Goal: (b) at most
2x (a)'s time and under 2 GB peak at every size. Rounds interleave the sides, so load from
other work on the machine falls on both; each figure is reported as its range over the rounds.

    python -m bench.ingest --rows 1000000 5000000 20000000 --rounds 2
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bench.child import run_child

ROOT = Path(__file__).resolve().parents[1]
GENERATE_ROWS = 1_000_000
REFERENCE_ROWS = 250_000  # the suites' row-count bounds (x0.1..x100) then admit 25k..25M rows
GOAL_RATIO, GOAL_PEAK_MIB = 2.0, 2048
SIDES = {  # side -> child mode
    "pyarrow_conversion": "convert",
    "ingest_and_validation": "cold",
    "in_process": "warm",
}


def generate(rows: int, path: Path, seed: int = 0) -> None:
    """Write `rows` rows like the example to `path`, never more than a million in memory."""
    import numpy as np  # the parent's alone: side (a) imports pyarrow only
    import pandas as pd
    import pyarrow as pa

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
    started = time.perf_counter()
    reader = pacsv.open_csv(csv)
    rows = 0
    with pq.ParquetWriter(out, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    return {"rows": rows, "work_seconds": round(time.perf_counter() - started, 2)}


def ingest_and_validate(csv: Path, case: Path, warm: bool) -> dict:
    """Side (b) (cold) or (c) (warm): the snapshot and validation the training flow's tasks call.

    Cold, GX is imported and the checkpoint opened on a thread while the CSV streams; warm,
    everything is imported before the clock starts and validation opens its checkpoint itself.
    """
    from prefect_mlops.config import load_config
    from prefect_mlops.settings import Settings
    from prefect_mlops.snapshots import take_snapshot
    from prefect_mlops.sources import CsvSource

    settings = Settings(gx_root=case / "great_expectations", artifact_root=case / "artifacts")
    config = load_config(ROOT / "configs" / "bikeshare.yaml")
    if warm:
        from prefect_mlops.expectations import chunked  # noqa: F401  (GX, before the clock)
    else:
        from prefect_mlops.expectations.background import open_checkpoint_in_background

        opening = open_checkpoint_in_background(config, settings, "training")
    started = time.perf_counter()
    snapshot = take_snapshot(CsvSource(path=str(csv)), settings.snapshot_dir, settings=settings)
    ingest_seconds = time.perf_counter() - started
    opened = None if warm else opening.result()
    waited = time.perf_counter() - started - ingest_seconds
    from prefect_mlops.expectations.chunked import validate_snapshot_file

    summary = validate_snapshot_file(
        snapshot.uri, config, settings, "training", snapshot.fingerprint, _stderr, opened
    )
    work_seconds = time.perf_counter() - started
    return {
        "rows": snapshot.rows,
        "fingerprint": snapshot.fingerprint,
        "validation_success": summary.success,
        "failed": [f.model_dump() for f in summary.failed],
        "work_seconds": round(work_seconds, 2),
        "ingest_seconds": round(ingest_seconds, 2),
        "waited_for_gx_seconds": round(waited, 2),
        "validate_seconds": round(work_seconds - ingest_seconds - waited, 2),
    }


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare_gx(csv: Path, case: Path) -> None:
    """A private GX project with the example's suites profiled on the file's first rows."""
    import pandas as pd

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


def measure(rows: int, rounds: int, work: Path) -> dict:
    """Generate one size, run the three sides `rounds` times interleaved, delete what was made."""
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
    measured = []
    for index in range(rounds):
        sides: dict[str, Any] = {"load_average": [round(x, 2) for x in os.getloadavg()]}
        for side, mode in SIDES.items():
            target = work / "converted.parquet" if mode == "convert" else case
            args = ["--child", mode, str(csv), str(target)]
            answer, seconds, peak = run_child("bench.ingest", args, env, work / "log")
            sides[side] = {"seconds": round(seconds, 2), "peak_rss_mib": round(peak), **answer}
        measured.append(_compared(sides))
        _report(index, measured[-1])
    result = {"rows": rows, "csv_mib": round(csv.stat().st_size / 2**20), **_ranges(measured)}
    result["rounds"] = measured
    print(f"  goal met in every round: {result['meets_goal']}", flush=True)
    csv.unlink()
    shutil.rmtree(case)
    (work / "converted.parquet").unlink(missing_ok=True)
    return result


def _compared(sides: dict) -> dict:
    """One round's sides with its two ratios and whether it met the goal."""
    theirs, cold, warm = (sides[side] for side in SIDES)
    cold_ratio = cold["seconds"] / theirs["seconds"]
    inline_ratio = warm["seconds"] / theirs["seconds"]  # (c)'s whole process: GX in line
    work_ratio = warm["work_seconds"] / theirs["work_seconds"]
    peak = max(cold["peak_rss_mib"], warm["peak_rss_mib"])
    return {
        **sides,
        "cold_ratio": round(cold_ratio, 2),
        "cold_inline_import_ratio": round(inline_ratio, 2),
        "in_process_ratio": round(work_ratio, 2),
        "meets_goal": cold_ratio <= GOAL_RATIO and peak < GOAL_PEAK_MIB,
    }


def _ranges(measured: list[dict]) -> dict:
    """Each ratio's and peak's lowest and highest over the rounds."""

    def spread(values: list[float]) -> list[float]:
        return [min(values), max(values)]

    return {
        "cold_ratio": spread([m["cold_ratio"] for m in measured]),
        "cold_inline_import_ratio": spread([m["cold_inline_import_ratio"] for m in measured]),
        "in_process_ratio": spread([m["in_process_ratio"] for m in measured]),
        "peak_rss_mib": spread(
            [m[side]["peak_rss_mib"] for m in measured for side in list(SIDES)[1:]]
        ),
        "meets_goal": all(m["meets_goal"] for m in measured),
    }


def _report(index: int, round_: dict) -> None:
    theirs, cold, warm = (round_[side] for side in SIDES)
    print(
        f"  round {index + 1} (load {round_['load_average'][0]}): cold {cold['seconds']:.1f} s "
        f"vs pyarrow {theirs['seconds']:.1f} s = {round_['cold_ratio']:.2f}x, peak "
        f"{cold['peak_rss_mib']:,} MiB (GX imported in line: {warm['seconds']:.1f} s = "
        f"{round_['cold_inline_import_ratio']:.2f}x); in-process {warm['work_seconds']:.1f} s "
        f"(snapshot {warm['ingest_seconds']:.1f} + validation {warm['validate_seconds']:.1f}) vs "
        f"{theirs['work_seconds']:.1f} s = {round_['in_process_ratio']:.2f}x, peak "
        f"{warm['peak_rss_mib']:,} MiB",
        flush=True,
    )


def run_side(mode: str, csv: Path, out: Path) -> None:
    """A child: one side's answer as the last line of stdout."""
    if mode == "convert":
        answer = convert(csv, out)
    else:
        answer = ingest_and_validate(csv, out, warm=mode == "warm")
    print(json.dumps(answer), flush=True)
    # The interpreter's last collections walk every object GX's import made: 1.2-1.5 s of a
    # process that imported GX (0.04 s after a freeze); a process about to end needs none.
    gc.freeze()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per size")
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "CSV", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, csv, out = args.child
        run_side(mode, Path(csv), Path(out))
        return
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        results = [measure(rows, args.rounds, Path(tmp)) for rows in args.rows]
    out = ROOT / "bench" / "results" / f"ingest-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
