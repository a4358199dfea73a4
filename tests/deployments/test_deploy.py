"""`mlops deploy --config`: each model's deployments and retrain trigger, several models on one
server (the session's Prefect test server), created by the real `prefect deploy`; every drift
event is answered by one retrain trigger, the model's own or prefect.yaml's catch-all."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from prefect.server.events.schemas.events import Resource, ResourceSpecification
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from deployments.deploy import deploy_all, model_deployments
from deployments.setup import ensure_work_pool
from deployments.simulate import retrain_triggers
from prefect_mlops.cli import app
from prefect_mlops.config import MonitoringConfig, load_config
from prefect_mlops.monitoring import (
    CATCH_ALL_RETRAINING,
    RETRAIN_DEPLOYMENT_LABEL,
    DriftSummary,
    model_resource_id,
)
from prefect_mlops.monitoring.decision import decide, summarize
from prefect_mlops.results import ModelVersionRef, PromotionDecision
from prefect_mlops.rollout import (
    CATCH_ALL_ROLLOUT,
    ROLLOUT_DEPLOYMENT_LABEL,
    model_rollout_deployment,
)
from prefect_mlops.settings import Settings
from tasks.monitor import emit_monitoring_events, retraining_deployment_of
from tasks.rollout import hand_to_rollout
from tasks.routing import deployment_or_catch_all
from tests.conftest import ROOT, fast_config_dict, write_config
from tests.prefect_mlops.monitoring.test_decision import MODEL, PASSED, WINDOW, report

MODELS = ("deploy-alpha", "deploy-beta")
LONER = "deploy-loner"  # a model without deployments of its own


def catch_all_trigger(spec: dict[str, Any], name: str = "train") -> dict[str, Any]:
    (deployment,) = [d for d in spec["deployments"] if d["name"] == name]
    (trigger,) = deployment["triggers"]
    return trigger


def rollout_labels(model: str, rollout_deployment: str) -> dict[str, str]:
    """The labels of a challenger-registered event's resource a rollout trigger reads."""
    return {
        "prefect.resource.id": model_resource_id(model),
        ROLLOUT_DEPLOYMENT_LABEL: rollout_deployment,
    }


def event_labels(model: str, retrain_deployment: str) -> dict[str, str]:
    """The labels of a monitoring event's resource a retrain trigger's `match` reads."""
    return {
        "prefect.resource.id": model_resource_id(model),
        RETRAIN_DEPLOYMENT_LABEL: retrain_deployment,
    }


def answers(trigger: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether the server's own matching (globs, `!` negation) takes an event for a trigger."""
    match = ResourceSpecification.model_validate(trigger["match"])
    return match.matches(Resource.model_validate(labels))


def test_a_model_with_its_own_deployments_is_not_the_catch_alls(
    settings: Settings, tmp_path: Path
) -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    catch_all = catch_all_trigger(spec)
    catch_all_rollout = catch_all_trigger(spec, "rollout")
    made: dict[str, dict[str, dict[str, Any]]] = {}
    for model in MODELS:
        config_path = write_config(
            tmp_path / f"{model}.yaml", fast_config_dict(registered_model_name=model)
        )
        made[model] = {
            d["name"].split("-", 1)[0]: d
            for d in model_deployments(load_config(config_path), str(config_path), spec, settings)
        }
    for model, other in (MODELS, MODELS[::-1]):
        # Monitoring deployed for the model names the model's own training deployment ...
        labelled = made[model]["monitor"]["parameters"]["params"]["retrain_deployment"]
        assert labelled == f"training/train-{model}"
        (own,) = made[model]["train"]["triggers"]
        (neighbour,) = made[other]["train"]["triggers"]
        # ... so its events are its own trigger's and no other's (the catch-all's neither).
        event = event_labels(model, labelled)
        assert [answers(t, event) for t in (own, neighbour, catch_all)] == [True, False, False]
        # A model monitored without deployments of its own is the catch-all's only.
        loner = event_labels(LONER, CATCH_ALL_RETRAINING)
        assert [answers(t, loner) for t in (own, neighbour, catch_all)] == [False, False, True]
        # An event of the model addressed to the catch-all is the catch-all's only.
        addressed = event_labels(model, CATCH_ALL_RETRAINING)
        assert [answers(t, addressed) for t in (own, catch_all)] == [False, True]
        # Registration events of a blessed challenger: the same, for the rollout deployments.
        (own_rollout,) = made[model]["rollout"]["triggers"]
        (neighbour_rollout,) = made[other]["rollout"]["triggers"]
        rollouts = (own_rollout, neighbour_rollout, catch_all_rollout)
        registered = rollout_labels(model, model_rollout_deployment(model))
        assert [answers(t, registered) for t in rollouts] == [True, False, False]
        assert [answers(t, rollout_labels(LONER, CATCH_ALL_ROLLOUT)) for t in rollouts] == [
            False,
            False,
            True,
        ]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Both models deployed with `mlops deploy --config` beside prefect.yaml's catch-all `train`
    (each `prefect deploy` imports the flows it deploys: ~20 s on a loaded CI machine)."""
    folder = tmp_path_factory.mktemp("deploy")
    ensure_work_pool()
    configs = {
        model: write_config(
            folder / f"{model}.yaml", fast_config_dict(name=model, registered_model_name=model)
        )
        for model in MODELS
    }
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    spec["deployments"] = [d for d in spec["deployments"] if d["name"] == "train"]
    catch_all = folder / "prefect.yaml"
    catch_all.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert deploy_all(catch_all) == 0
    options = [a for path in configs.values() for a in ("--config", str(path))]
    answer = CliRunner().invoke(app, ["deploy", *options])  # one `prefect deploy` for both
    assert answer.exit_code == 0, answer.output[-3000:]
    for model in MODELS:
        assert f"rollout-{model}-on-challenger on mlops.model.{model} events" in answer.output
    yield configs
    # Other tests on this server: no trigger left to start training runs, no run left queued.
    with get_client(sync_client=True) as client:
        owned = [f"{kind}-{m}" for m in MODELS for kind in ("training/train", "rollout/rollout")]
        for name in [*owned, CATCH_ALL_RETRAINING]:
            deployment_id = client.read_deployment_by_name(name).id
            client.delete_resource_owned_automations(f"prefect.deployment.{deployment_id}")
            client.delete_deployment(deployment_id)


def test_two_configs_deploy_side_by_side_each_with_its_own_trigger(
    deployed: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with get_client(sync_client=True) as client:
        automations = {a.name: a for a in client.read_automations()}
        for model in MODELS:
            config_path = str(deployed[model])
            train = client.read_deployment_by_name(f"training/train-{model}")
            monitor = client.read_deployment_by_name(f"monitoring/monitor-{model}")
            score = client.read_deployment_by_name(f"batch-scoring/score-{model}")
            for deployment in (train, monitor, score):
                assert deployment.parameters["params"]["config_path"] == config_path
                assert model in deployment.tags
            assert score.parameters["params"]["destination"]["path"].endswith(f"{model}.parquet")
            assert monitor.schedules and score.schedules

            trigger = automations[f"retrain-{model}"]
            assert trigger.trigger.match.model_dump() == {
                "prefect.resource.id": f"mlops.model.{model}",
                RETRAIN_DEPLOYMENT_LABEL: f"training/train-{model}",
            }
            (action,) = trigger.actions
            assert action.deployment_id == train.id
            assert action.parameters["params"]["config_path"] == config_path
            assert action.parameters["params"]["window"] == "recent"

            rollout = client.read_deployment_by_name(f"rollout/rollout-{model}")
            assert rollout.parameters["params"]["config_path"] == config_path
            on_challenger = automations[f"rollout-{model}-on-challenger"]
            assert on_challenger.trigger.match.model_dump() == {
                "prefect.resource.id": f"mlops.model.{model}",
                ROLLOUT_DEPLOYMENT_LABEL: f"rollout/rollout-{model}",
            }
            (action,) = on_challenger.actions
            assert action.deployment_id == rollout.id
            assert action.parameters["params"]["config_path"] == config_path
            assert action.parameters["params"]["version"] == "{{ event.payload.version }}"

    # Monitoring finds each model's own training deployment on the server, the catch-all else.
    assert retraining_deployment_of(MODELS[0]) == f"training/train-{MODELS[0]}"
    assert retraining_deployment_of(LONER) == CATCH_ALL_RETRAINING
    # `mlops simulate` on this server would retrain a deployed model through its own trigger
    # only, and a model without deployments through the catch-all.
    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    assert retrain_triggers(MODELS[0]) == [f"retrain-{MODELS[0]}"]
    assert retrain_triggers(LONER) == ["retrain-on-drift"]


def drift_summary(model: str, config_path: str) -> DriftSummary:
    drift = report(share=0.6)  # one breach: feature drift
    decision = decide(drift, PASSED, MonitoringConfig())
    summary = summarize(MODEL, WINDOW, config_path, decision, drift, PASSED)
    return summary.model_copy(update={"model_name": model})


def runs_of(deployment: str) -> list[Any]:
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(deployment).id
        found = FlowRunFilterDeploymentId(any_=[deployment_id])
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=found))


def test_one_drift_event_starts_one_training_run(deployed: dict[str, Path]) -> None:
    alpha, other = MODELS
    own = emit_monitoring_events.fn(drift_summary(alpha, str(deployed[alpha])))
    loner = emit_monitoring_events.fn(drift_summary(LONER, "configs/loner.yaml"))
    catch_all = CATCH_ALL_RETRAINING
    assert own.events and loner.events
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and not (
        runs_of(f"training/train-{alpha}") and runs_of(catch_all)
    ):
        time.sleep(0.5)
    # The events are evaluated in the order sent: once the loner's run exists, alpha's event has
    # been seen by every trigger; a moment more for an action the catch-all would have queued.
    time.sleep(2)
    (alpha_run,) = runs_of(f"training/train-{alpha}")
    assert alpha_run.parameters["params"]["reason"].endswith(own.events[0])
    assert alpha_run.parameters["params"]["config_path"] == str(deployed[alpha])
    (loner_run,) = runs_of(catch_all)  # the loner's event only, none for alpha's
    assert loner_run.parameters["params"]["reason"].endswith(loner.events[0])
    assert loner_run.parameters["params"]["config_path"] == "configs/loner.yaml"
    assert runs_of(f"training/train-{other}") == []


def test_one_registration_event_starts_one_rollout_the_models_own(
    deployed: dict[str, Path],
) -> None:
    alpha = MODELS[0]
    own = model_rollout_deployment(alpha)
    assert deployment_or_catch_all(own, CATCH_ALL_ROLLOUT) == own
    assert deployment_or_catch_all(model_rollout_deployment(LONER), CATCH_ALL_ROLLOUT) == (
        CATCH_ALL_ROLLOUT
    )
    version = ModelVersionRef(name=alpha, version="3")
    blessed = PromotionDecision(promote=True, reason="better than the champion")
    handed = hand_to_rollout.fn(version, blessed, str(deployed[alpha]), "run-1")
    assert handed.promote is False
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and not runs_of(own):
        time.sleep(0.5)
    time.sleep(2)  # a second run, if a second trigger took the event too
    (run,) = runs_of(own)
    assert run.parameters["params"]["version"] == "3"
    assert run.parameters["params"]["config_path"] == str(deployed[alpha])
    assert run.parameters["params"]["reason"].startswith("mlops.model.challenger-registered")
    assert runs_of(model_rollout_deployment(MODELS[1])) == []
