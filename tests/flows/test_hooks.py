"""The heavy flows declare their process policies as hooks."""

from flows.monitoring import monitoring_flow
from flows.scoring import scoring_flow
from flows.training import training_flow
from tasks.policies import exit_without_collection, refuse_pickle


def test_heavy_flows_skip_the_exit_collection() -> None:
    for flow in (training_flow, scoring_flow, monitoring_flow):
        assert exit_without_collection in flow.on_running_hooks, flow.name


def test_flows_that_load_models_switch_pickle_loading_off() -> None:
    for flow in (training_flow, scoring_flow, monitoring_flow):
        assert refuse_pickle in flow.on_running_hooks, flow.name
