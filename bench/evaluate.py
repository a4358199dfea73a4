"""Benchmark: the project's holdout evaluation against `mlflow.models.evaluate` at 1M rows.

The same fitted model (the bikeshare config's HistGradientBoosting, trained on the 2011 data)
scores the same 1M holdout rows (the 2011 hours resampled with jittered weather) on three sides,
each in its own process, each logging to its own MLflow run on a SQLite store:

- `project`: `evaluation.evaluate_holdout` + `log_holdout_report` (metrics, slice table and plot,
  diagnostic plots, permutation importance on 2,000 rows), what the training flow runs;
- `mlflow`: `mlflow.models.evaluate(model_type="regressor")` with the model as a function, then
  `mlflow.validate_evaluation_results` against the config's thresholds;
- `mlflow-predictions`: the same with the predictions precomputed in a column (`predictions=`),
  the evaluator's own cost alone.

Wall seconds and peak RSS (`os.wait4` ru_maxrss) are those of each child process; every side
runs with one OpenMP thread (`OMP_NUM_THREADS=1` unless set).

    .venv/bin/python -m bench.evaluate [--rows 1000000]   # table, bench/results/evaluate.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.child import run_child

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "bikeshare.yaml"
CSV = ROOT / "data" / "bikeshare" / "bikeshare_hourly_2011.csv"
RESULTS = ROOT / "bench" / "results" / "evaluate.json"
SIDES = ("project", "mlflow", "mlflow-predictions")
CANDIDATE = {"learning_rate": 0.1, "max_iter": 200}


def resampled(rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` hours drawn from the 2011 data, weather jittered so no two rows repeat exactly."""
    frame = pd.read_csv(CSV)
    rng = np.random.default_rng(seed)
    sample = frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)
    for column in ("temp", "atemp", "hum", "windspeed"):
        sample[column] = (sample[column] + rng.normal(0, 0.02, rows)).clip(0, 1)
    return sample


def prepare(folder: Path, rows: int) -> None:
    """The fitted model (skops file) and the holdout Parquet both sides read."""
    import skops.io

    from prefect_mlops.config import load_config
    from prefect_mlops.estimators import build_model
    from prefect_mlops.features import infer_schema
    from prefect_mlops.results import CandidateSpec

    config = load_config(CONFIG)
    train = pd.read_csv(CSV)
    schema = infer_schema(train, config)
    spec = CandidateSpec(name="hgb", estimator="hist_gradient_boosting", params=CANDIDATE, index=0)
    model = build_model(spec, schema, config.seed).fit(train[schema.features], train[config.target])
    skops.io.dump(model, folder / "model.skops")
    (folder / "schema.json").write_text(schema.model_dump_json())
    resampled(rows).to_parquet(folder / "holdout.parquet", index=False)


def run_side(side: str, folder: Path) -> dict:
    """Evaluate in this process the way `side` does; what it computed and how long it took."""
    import mlflow
    import skops.io
    from mlflow.models import MetricThreshold
    from mlflow.tracking import MlflowClient

    from prefect_mlops.config import load_config
    from prefect_mlops.evaluation import evaluate_holdout, log_holdout_report
    from prefect_mlops.packaging import trusted_types
    from prefect_mlops.results import FeatureSchema

    config = load_config(CONFIG)
    schema = FeatureSchema.model_validate_json((folder / "schema.json").read_text())
    untrusted = skops.io.get_untrusted_types(file=folder / "model.skops")
    model = skops.io.load(folder / "model.skops", trusted=untrusted)
    assert trusted_types(model) is not None  # the same model the flow would log
    holdout = pd.read_parquet(folder / "holdout.parquet", columns=schema.columns(*config.slices))
    uri = f"sqlite:///{folder / f'{side}.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment(side, artifact_location=(folder / side).as_uri())
    run_id = client.create_run(experiment).info.run_id
    started = time.perf_counter()
    if side == "project":
        report = evaluate_holdout(model, holdout, schema, config)
        log_holdout_report(client, run_id, report)
        metrics = report.evaluation.metrics
        passed = None
    else:
        data = holdout[[*schema.features, schema.target]]
        predict = None
        if side == "mlflow-predictions":
            data = data.assign(prediction=model.predict(data[schema.features]))
        else:

            def predict(frame: pd.DataFrame) -> np.ndarray:
                return np.asarray(model.predict(frame[schema.features]))

        with mlflow.start_run(run_id=run_id):
            result = mlflow.models.evaluate(
                model=predict,
                data=data,
                targets=schema.target,
                predictions="prediction" if predict is None else None,
                model_type="regressor",
                evaluators="default",
                evaluator_config={"log_model_explainability": False},
            )
        thresholds = {
            "root_mean_squared_error": MetricThreshold(threshold=150, greater_is_better=False),
            "r2_score": MetricThreshold(threshold=0.6, greater_is_better=True),
        }
        try:
            mlflow.validate_evaluation_results(thresholds, result)
            passed = True
        except Exception:  # ModelValidationFailedException: what the gate would reject
            passed = False
        metrics = {
            "rmse": result.metrics["root_mean_squared_error"],
            "mae": result.metrics["mean_absolute_error"],
            "r2": result.metrics["r2_score"],
        }
    seconds = time.perf_counter() - started
    artifacts = sorted(a.path for a in client.list_artifacts(run_id))
    return {
        "side": side,
        "evaluate_seconds": round(seconds, 2),
        "rows": len(holdout),
        "rmse": round(float(metrics["rmse"]), 4),
        "r2": round(float(metrics["r2"]), 4),
        "validated": passed,
        "artifacts": artifacts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--side", choices=SIDES, help="(internal) run one side in this process")
    parser.add_argument("--folder", type=Path, help="(internal) the prepared case")
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args.side, args.folder)))
        return
    # One OpenMP thread on every side: the model's predictions cost the same everywhere, and
    # a loaded machine's oversubscribed OpenMP teams do not decide the comparison.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    env = {**os.environ, "MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "true"}
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
        folder = Path(tmp)
        prepare(folder, args.rows)
        results = []
        for side in SIDES:
            argv = ["--side", side, "--folder", str(folder)]
            answer, wall, peak = run_child("bench.evaluate", argv, env, folder / f"{side}.log")
            results.append({**answer, "process_seconds": round(wall, 1), "peak_mib": round(peak)})
    print(f"{'side':<20} {'evaluate s':>10} {'process s':>10} {'peak MiB':>9} {'rmse':>9}")
    for r in results:
        print(
            f"{r['side']:<20} {r['evaluate_seconds']:>10.1f} {r['process_seconds']:>10.1f} "
            f"{r['peak_mib']:>9} {r['rmse']:>9.4g}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": args.rows, "sides": results}, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
