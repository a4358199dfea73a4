"""Benchmark (issue 15 c): training with candidates on a Dask cluster against threads, same cores.

The training flow runs twice on the same synthesised data (rows shaped like the bike-sharing
example), each run in its own child process and its own MLflow store, against one `prefect
server` on loopback: with `MLOPS_TASK_RUNNER=threads` (candidates side by side on the flow's
threads, one core each) and with the address of a `distributed.LocalCluster` of two single-thread
worker processes on the same machine (every candidate a task on the cluster, its folds spread
through joblib's Dask backend). Per-candidate costs are the `score_candidate` task runs' durations
read back from Prefect; from them the candidate phase on M machines of the same size is estimated
on paper: rest + max(sum(costs) / (slots x M), max(cost) / folds), where `rest` (snapshot,
validation, refit, evaluation, logging, registration) stays on the flow's host.

    python -m bench.dask_training                 # 100k rows, 4 candidates, 3 folds
    python -m bench.dask_training --rows 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.child import prepare_case, run_child
from bench.dask_scoring import start_prefect_server
from bench.training import ROOT, bench_config, synthesise

CANDIDATES = [
    {"name": "ridge", "estimator": "linear", "search_space": {"alpha": [1.0]}},
    {"name": "hgb", "estimator": "hist_gradient_boosting", "params": {"max_iter": 100}},
    {
        "name": "hgb_deep",
        "estimator": "hist_gradient_boosting",
        "params": {"max_iter": 200, "max_leaf_nodes": 63},
    },
    {
        "name": "forest",
        "estimator": "random_forest",
        "params": {"n_estimators": 30, "max_depth": 12},
    },
]
SLOTS = 2  # the cluster's: two workers of one thread each (the machine's two cores)


async def candidate_costs(flow_run_id: str) -> tuple[list[float], float]:
    """Seconds of each `score_candidate` task run of a flow run, and the span they covered."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    spans = [
        (r.start_time, r.end_time)
        for r in runs
        if r.task_key.startswith("score_candidate-") and r.start_time and r.end_time
    ]
    costs = [(end - start).total_seconds() for start, end in spans]
    if not spans:
        return costs, 0.0
    return costs, (max(end for _, end in spans) - min(start for start, _ in spans)).total_seconds()


def train_child(config_path: str) -> None:
    """The training flow in this process: its metrics, wall time and candidate costs as JSON."""
    from flows.training import TrainingParams, training_flow

    started = time.perf_counter()
    state = training_flow(TrainingParams(config_path=config_path), return_state=True)
    seconds = time.perf_counter() - started
    result = state.result()
    costs, span = asyncio.run(candidate_costs(str(state.state_details.flow_run_id)))
    metrics = result.evaluation.metrics if result.evaluation else {}
    best = result.best.spec.name if result.best else None
    print(
        json.dumps(
            {"seconds": seconds, "metrics": metrics, "best": best, "costs": costs, "span": span}
        )
    )


def on_paper(costs: list[float], rest: float, folds: int, machines: int) -> float:
    """Flow seconds on `machines` hosts like this one, from the per-candidate costs."""
    return rest + max(sum(costs) / (SLOTS * machines), max(costs) / folds)


def run(rows: int) -> dict[str, Any]:
    import distributed

    from prefect_mlops.dask_runner import local_cluster_kwargs

    work = Path(tempfile.mkdtemp(prefix="bench-dask-training-"))
    base_env = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "GX_ANALYTICS_ENABLED": "false",
    }
    server, api_url = start_prefect_server(work / "prefect", base_env)
    try:
        data = work / "data.parquet"
        synthesise(rows).to_parquet(data, index=False)
        config = bench_config(data)
        config["candidates"] = CANDIDATES
        config["tuning"]["parallel_candidates"] = SLOTS
        folds = config["tuning"]["cv_folds"]

        def side(name: str, runner: str) -> tuple[dict, float]:
            case = work / name
            case.mkdir()
            config_path, env = prepare_case(case, config, data, api_url, base_env)
            if runner != "threads":  # Dask: every candidate at once, the cluster bounds them
                dask_config = {**config, "tuning": {**config["tuning"]}}
                dask_config["tuning"].pop("parallel_candidates")
                config_path.write_text(json.dumps(dask_config))
            answer, _wall, peak = run_child(
                "bench.dask_training",
                ["--child", str(config_path)],
                {**env, "MLOPS_TASK_RUNNER": runner},
                case / "child.log",
            )
            return answer, peak

        threads, threads_mib = side("threads", "threads")
        kwargs = {**local_cluster_kwargs(), "n_workers": SLOTS, "threads_per_worker": 1}
        with distributed.LocalCluster(**kwargs) as cluster:
            on_dask, dask_mib = side("dask", cluster.scheduler_address)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    costs = threads["costs"]
    rest = threads["seconds"] - threads["span"]
    result = {
        "rows": rows,
        "candidates": len(CANDIDATES),
        "folds": folds,
        "threads_s": threads["seconds"],
        "dask_s": on_dask["seconds"],
        "dask_over_threads": on_dask["seconds"] / threads["seconds"],
        "threads_candidate_phase_s": threads["span"],
        "dask_candidate_phase_s": on_dask["span"],
        "per_candidate_s_threads": costs,
        "per_candidate_s_dask": on_dask["costs"],
        "rest_s": rest,
        "on_paper_s": {m: on_paper(costs, rest, folds, m) for m in (1, 2, 4, 8)},
        "threads_flow_peak_mib": threads_mib,
        "dask_flow_peak_mib": dask_mib,
        "same_best": threads["best"] == on_dask["best"],
        "same_metrics": threads["metrics"] == on_dask["metrics"],
    }
    print(json.dumps(result, indent=2), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--child", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        train_child(args.child[0])
        return
    result = run(args.rows)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"dask-training-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json").write_text(
        json.dumps(result, indent=2)
    )


if __name__ == "__main__":
    main()
