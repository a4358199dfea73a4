"""What a person sees in MLflow after one real training run (issue 13): the logged model in the
run's experiment under the registered name, source, user and Prefect link on every run, candidate
runs spanning their cross-validation, the holdout identity, the decision in the version's
description and the slice table."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from flows.training import TrainingParams, training_flow
from prefect_mlops.lineage import FLOW_RUN_TAG, FLOW_RUN_URL_TAG, HOLDOUT_TAG
from prefect_mlops.registry import PENDING_ALIAS_TAG
from tests.conftest import ROOT, fast_config_dict, write_config

MODEL = "bikeshare-demand"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[dict]:
    """One training run of the small config, in its own MLflow store and artifact root."""
    root = tmp_path_factory.mktemp("mlflow-view")
    shutil.copy(mlflow_template, root / "mlflow.db")
    shutil.copytree(
        ROOT / "great_expectations",
        root / "great_expectations",
        ignore=shutil.ignore_patterns("uncommitted"),
    )
    config = write_config(root / "bikeshare.yaml", fast_config_dict())
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {
        "MLFLOW_TRACKING_URI": uri,
        "MLOPS_ARTIFACT_ROOT": str(root / "artifacts"),
        "MLOPS_GX_ROOT": str(root / "great_expectations"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        result = training_flow(TrainingParams(config_path=str(config)))
        client = MlflowClient(tracking_uri=uri)
        yield {"result": result, "client": client, "run": client.get_run(result.mlflow_run_id)}


def children(trained: dict) -> list[Run]:
    run: Run = trained["run"]
    query = f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    return list(trained["client"].search_runs([run.info.experiment_id], query))


def test_the_logged_model_is_in_the_runs_experiment_named_after_the_registered_model(
    trained: dict,
) -> None:
    client, run = trained["client"], trained["run"]
    version = client.get_model_version(MODEL, trained["result"].model_version.version)
    mlflow.set_tracking_uri(client.tracking_uri)
    found = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id, "0"], output_format="list"
    )
    assert len(found) == 1
    logged = found[0]
    assert version.source == f"models:/{logged.model_id}"
    listed = json.loads(logged.tags["mlflow.modelVersions"])
    assert listed == [{"name": MODEL, "version": str(version.version)}]
    assert logged.experiment_id == run.info.experiment_id != "0"
    assert logged.name == MODEL
    assert logged.source_run_id == run.info.run_id
    assert logged.params["estimator"] == "HistGradientBoostingRegressor"
    assert [o.model_id for o in run.outputs.model_outputs] == [logged.model_id]


def test_every_run_names_its_source_user_and_prefect_flow_run(trained: dict) -> None:
    run = trained["run"]
    flow_run_id = run.data.tags[FLOW_RUN_TAG]
    assert flow_run_id not in ("", "none")
    for each in [run, *children(trained)]:
        tags = each.data.tags
        assert tags["mlflow.source.name"] == "flows/training.py:training_flow"
        assert tags["mlflow.source.type"] == "LOCAL"
        assert tags["mlflow.user"]
        assert tags[FLOW_RUN_TAG] == flow_run_id
        # The test harness's server has an API URL, so the UI address is known.
        assert tags[FLOW_RUN_URL_TAG].endswith(f"/runs/flow-run/{flow_run_id}")
    assert flow_run_id in run.data.tags["mlflow.note.content"]


def test_candidate_runs_span_their_cross_validation(trained: dict) -> None:
    candidates = children(trained)
    assert len(candidates) == 2
    for run in candidates:
        seconds = run.data.metrics["cv_seconds"]
        assert seconds > 0
        assert (run.info.end_time - run.info.start_time) / 1000 >= seconds - 0.01


def test_runs_and_version_record_which_holdout_scored_them(trained: dict) -> None:
    result, run = trained["result"], trained["run"]
    holdout = run.data.tags[HOLDOUT_TAG]
    fingerprint, rows = holdout.split(":")
    assert len(fingerprint) == 16 and int(rows) == int(run.data.params["holdout_rows"])
    assert {c.data.tags[HOLDOUT_TAG] for c in children(trained)} == {holdout}
    version = trained["client"].get_model_version(MODEL, result.model_version.version)
    assert version.tags[HOLDOUT_TAG] == holdout
    experiment = run.info.experiment_id
    same = trained["client"].search_runs([experiment], f"tags.{HOLDOUT_TAG} = '{holdout}'")
    assert len(same) == 3


def test_the_version_describes_the_decision_and_keeps_only_readable_lineage_tags(
    trained: dict,
) -> None:
    result = trained["result"]
    version = trained["client"].get_model_version(MODEL, result.model_version.version)
    text = version.description
    assert text.startswith("**Promoted to champion**: ")
    assert "### Model gate: BLESSED" in text
    assert "| pass | r2 >= 0.6 |" in text
    assert "No champion yet." in text
    assert f"| rmse | {result.evaluation.metrics['rmse']:.4g} |" in text
    assert PENDING_ALIAS_TAG not in version.tags
    assert not [t for t in version.tags if t.startswith("split_")]  # they stay on the run
    assert {FLOW_RUN_TAG, "data_fingerprint", "config_hash", "data_snapshot"} <= set(version.tags)
    assert len(version.tags) <= 10


def test_slice_metrics_are_a_table_and_a_plot(trained: dict) -> None:
    client, run_id = trained["client"], trained["run"].info.run_id
    paths = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert {"evaluation/slice_metrics.json", "evaluation/slice_metrics.png"} <= paths
    table = json.loads(
        Path(client.download_artifacts(run_id, "evaluation/slice_metrics.json")).read_text()
    )
    assert table["columns"][:3] == ["column", "value", "rows"]
    assert {row[0] for row in table["data"]} == {"season", "workingday"}
