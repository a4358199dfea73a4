"""`mlops simulate`: replay the bike-sharing year to show the closed loop on real seasonal drift.

Trains on January-March, serves the champion with the real prediction service on loopback,
replays later months through it (labels fed back on /feedback), runs the monitoring flow, and
when it raises a drift event starts retraining on the recent window, then shows the service
answering with the new champion. Every step is a Prefect flow run, an MLflow run and (for
monitoring) an Evidently report in the local workspace.

The simulation keeps to its own names: the model `<demo model>-simulation` in the experiment
`<demo>-simulation`, hence its own Evidently project, so it runs the same on a machine where
`make demo` (or any other training) already registered the bike-sharing model.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, Field

from deployments.replay import prediction_service, replay, served_version, wait_for_log
from prefect_mlops.monitoring import DriftSummary, WindowSpec
from prefect_mlops.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIKESHARE_CSV = PROJECT_ROOT / "data" / "bikeshare" / "bikeshare_hourly_2011.csv"
BIKESHARE_CONFIG = PROJECT_ROOT / "configs" / "bikeshare.yaml"
SIMULATION_SUFFIX = "-simulation"


class SimulationResult(BaseModel):
    """What the replay showed, step by step."""

    config_path: str
    first_champion: str
    monitoring: DriftSummary
    retrained: bool
    retrain_reason: str = ""
    retrain_route: str = Field(default="", description="'deployment trigger' or 'direct call'")
    new_champion: str | None = None
    served_version_after: str | None = None
    steps: list[str] = Field(default_factory=list)


def months(frame: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    """Rows of the bike-sharing year whose timestamp falls in months first..last."""
    month = pd.to_datetime(frame["timestamp"]).dt.month
    return frame.loc[(month >= first) & (month <= last)].reset_index(drop=True)


def write_simulation_config(
    folder: Path, landing_csv: Path, recent_days: float, fast: bool
) -> Path:
    """The bikeshare config under the simulation's own names, reading the landing CSV, with a
    recent training window."""
    raw = yaml.safe_load(BIKESHARE_CONFIG.read_text())
    raw["name"] = f"{raw['name']}{SIMULATION_SUFFIX}"
    raw["registered_model_name"] = f"{raw['registered_model_name']}{SIMULATION_SUFFIX}"
    raw["experiment_name"] = raw["name"]
    raw["source"] = {"kind": "csv", "path": str(landing_csv)}
    raw["training_window"] = {"time_column": "timestamp", "days": recent_days}
    if fast:
        raw["tuning"] = {"cv_folds": 2, "max_configs_per_candidate": 1}
        raw["candidates"] = [
            {"name": "ridge", "estimator": "linear", "search_space": {"alpha": [1.0]}},
            {
                "name": "hist_gradient_boosting",
                "estimator": "hist_gradient_boosting",
                "params": {"max_iter": 100},
            },
        ]
    path = folder / "bikeshare-simulation.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def retrain_triggers(model: str) -> list[str]:
    """Enabled triggers on the configured Prefect server that answer `model`'s drift or decay
    events, labelled as monitoring labels them, with a deployment run (none without a server)."""
    if not os.environ.get("PREFECT_API_URL"):
        return []
    from prefect.client.orchestration import get_client
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger
    from prefect.events.schemas.events import Resource, ResourceSpecification

    from prefect_mlops.monitoring import (
        DRIFT_DETECTED,
        PERFORMANCE_DEGRADED,
        RETRAIN_DEPLOYMENT_LABEL,
        model_resource_id,
    )
    from tasks.monitor import retraining_deployment_of

    resource = Resource.model_validate(
        {
            "prefect.resource.id": model_resource_id(model),
            RETRAIN_DEPLOYMENT_LABEL: retraining_deployment_of(model),
        }
    )
    with get_client(sync_client=True) as client:
        automations = client.read_automations()
    return [
        automation.name
        for automation in automations
        if automation.enabled
        and isinstance(automation.trigger, EventTrigger)
        and {DRIFT_DETECTED, PERFORMANCE_DEGRADED} & set(automation.trigger.expect)
        and ResourceSpecification.model_validate(automation.trigger.match).matches(resource)
        and any(isinstance(action, RunDeployment) for action in automation.actions)
    ]


def ensure_retrain_trigger(config_path: Path, model: str, say: Callable[[str], None]) -> list[str]:
    """With a server: the triggers that will retrain `model`, deploying its own when none does."""
    if not os.environ.get("PREFECT_API_URL"):
        return []
    triggers = retrain_triggers(model)
    if triggers:
        return triggers
    from deployments.deploy import deploy_models

    lines, _ = deploy_models([config_path], PROJECT_ROOT / "prefect.yaml")
    for line in lines:
        say(f"   {line}")
    return retrain_triggers(model)


def replay_sample(rows: pd.DataFrame, limit: int | None, seed: int = 0) -> pd.DataFrame:
    """At most `limit` rows spread over the whole period (a seeded sample, in time order)."""
    if limit is None or len(rows) <= limit:
        return rows
    return rows.sample(n=limit, random_state=seed).sort_index().reset_index(drop=True)


def run_simulation(
    workdir: Path | None = None,
    train_months: tuple[int, int] = (1, 3),
    replay_months: tuple[int, int] = (7, 9),
    recent_days: float = 92,
    fast: bool = True,
    replay_rows: int | None = None,
    say: Callable[[str], None] = print,
) -> SimulationResult:
    """Train on early months, serve, replay later months, monitor, retrain on drift, re-serve.

    Args:
        workdir: where the landing CSV, config and prediction log go (default: <artifact root>/
            simulation); MLflow and Prefect are whatever the environment points at.
        train_months, replay_months: inclusive month ranges of 2011.
        recent_days: the training window a drift-triggered retraining uses.
        fast: a small candidate search (seconds) instead of the full bikeshare config.
        replay_rows: replay at most this many hours, spread over the replayed months (all
            when unset); fewer rows make a quicker demonstration of the same seasonal shift.
        say: where progress lines go.

    The result is also written to `<workdir>/simulation.json`.
    """
    from flows.monitoring import MonitoringParams, monitoring_flow
    from flows.training import TrainingParams, training_flow
    from prefect_mlops.config import load_config
    from prefect_mlops.features import infer_schema
    from prefect_mlops.registry import CHAMPION, require_version
    from prefect_mlops.tracking import mlflow_client
    from tasks.registry import promote_model

    settings = Settings()
    folder = (workdir or settings.local_root / "simulation").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    year = pd.read_csv(BIKESHARE_CSV)
    landing = folder / "landing" / "bikeshare.csv"
    landing.parent.mkdir(exist_ok=True)
    months(year, *train_months).to_csv(landing, index=False)
    config_path = write_simulation_config(folder, landing, recent_days, fast)
    config = load_config(config_path)
    steps: list[str] = []

    def step(line: str) -> None:
        steps.append(line)
        say(line)

    step(f"1. landing data: months {train_months[0]}-{train_months[1]} in {landing}")
    model = config.registered_model_name
    triggers = ensure_retrain_trigger(config_path, model, step)
    first = training_flow(TrainingParams(config_path=str(config_path), reason="simulate: initial"))
    first_version = first.model_version.version
    if not first.promoted:  # a simulation run before this one left its champion: start afresh
        promote_model.fn(model, first_version, "simulate: initial champion", settings)
    step(f"2. trained {model} v{first_version} (champion)")

    replayed = replay_sample(months(year, *replay_months), replay_rows)
    features = infer_schema(months(year, *train_months), config).features
    log_dir = folder / f"prediction_log-{time.strftime('%Y%m%dT%H%M%S')}"
    with prediction_service(config.registered_model_name, settings, log_dir, step) as url:
        sent = replay(url, replayed, features, config.target)
        wait_for_log(log_dir, sent)
        step(
            f"3. replayed {sent} hours of months {replay_months[0]}-{replay_months[1]} with labels"
        )
        # The months replayed have now happened: they land in the source the next training reads.
        months(year, train_months[0], replay_months[1]).to_csv(landing, index=False)

        window = WindowSpec(log_dir=str(log_dir), rows=sent)
        summary = monitoring_flow(MonitoringParams(config_path=str(config_path), window=window))
        step(
            f"4. monitoring: {summary.decision.outcome}; {summary.drifted_share:.0%} of features "
            f"drifted {summary.drifted_columns}; prediction drift {summary.prediction_drift}; "
            f"report {summary.report_uri}"
        )
        result = SimulationResult(
            config_path=str(config_path),
            first_champion=first_version,
            monitoring=summary,
            retrained=False,
            steps=steps,
        )
        if not summary.alarm:
            step("5. no alarm: nothing to retrain")
            return save_result(result, folder)

        # As the retrain-on-drift trigger words it: the event's name and id
        reason = " ".join([summary.decision.events[0], *summary.events[:1]])
        if triggers:
            step(
                f"5. events {summary.decision.events} emitted (ids {summary.events}); the "
                f"trigger(s) {triggers} start retraining on the server"
            )
            return save_result(
                result.model_copy(
                    update={"retrained": True, "retrain_reason": reason, "retrain_route": "trigger"}
                ),
                folder,
            )
        step(
            f"5. events {summary.decision.events} emitted; no Prefect server with a retrain "
            f"trigger here, so the training flow is called directly (window recent, "
            f"reason {reason})"
        )
        retrain = training_flow(
            TrainingParams(config_path=str(config_path), window="recent", reason=reason)
        )
        champion = require_version(mlflow_client(settings), config.registered_model_name, CHAMPION)
        now_served = served_version(url)
        step(
            f"6. retrained v{retrain.model_version.version} "
            f"(promoted: {retrain.promoted}); champion is v{champion.version}; the service now "
            f"serves v{now_served}"
        )
    final = result.model_copy(
        update={
            "retrained": True,
            "retrain_reason": reason,
            "retrain_route": "direct call",
            "new_champion": str(champion.version),
            "served_version_after": now_served,
        }
    )
    return save_result(final, folder)


def save_result(result: SimulationResult, folder: Path) -> SimulationResult:
    """Keep what the replay showed as `simulation.json` beside its data and config."""
    (folder / "simulation.json").write_text(result.model_dump_json(indent=2))
    return result


def main(argv: list[str] | None = None) -> Any:
    """`python -m deployments.simulate [WORKDIR]`."""
    args = argv if argv is not None else sys.argv[1:]
    return run_simulation(Path(args[0]) if args else None)


if __name__ == "__main__":
    main()
