"""The training flow end to end: real Prefect (test server), MLflow (SQLite), GX and sklearn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from flows.training import TrainingParams, training_flow
from prefect_mlops.config import load_config
from prefect_mlops.errors import DataValidationError, ModelGateError
from prefect_mlops.expectations.profile import init_suites
from prefect_mlops.settings import Settings
from tests.conftest import BIKESHARE_CSV, fast_config_dict, write_config

MODEL = "bikeshare-demand"


def client_for(settings: Settings) -> MlflowClient:
    return MlflowClient(tracking_uri=settings.tracking_uri)


def aliases(client: MlflowClient, name: str = MODEL) -> dict[str, str]:
    return {a: str(v) for a, v in client.get_registered_model(name).aliases.items()}


def run_tags_of(client: MlflowClient, result) -> dict[str, str]:
    return client.get_run(result.mlflow_run_id).data.tags


def run_training(config_path: Path):
    return training_flow(TrainingParams(config_path=str(config_path)))


@pytest.fixture
def trained(settings: Settings, fast_config_path: Path):
    """One successful training run: a champion exists."""
    return run_training(fast_config_path)


def test_demo_config_registers_a_champion_with_lineage(settings: Settings, trained) -> None:
    client = client_for(settings)
    assert trained.promoted
    assert aliases(client) == {"challenger": "1", "champion": "1"}
    version = client.get_model_version(MODEL, "1")
    assert version.tags["data_fingerprint"] == trained.snapshot.fingerprint
    assert version.tags["validation_result"] == "passed"
    assert version.tags["prefect.flow_run_id"] not in ("", "none")
    assert len(version.tags["config_hash"]) == 16
    assert version.tags["holdout"] == run_tags_of(client, trained)["holdout"]  # split_* on the run
    assert version.tags["git_commit"]
    run = client.get_run(trained.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["task"] == "regression"
    assert run.data.params["split_strategy"] == "time"
    assert run.data.tags["split_assignment"] == "time"
    assert run.data.tags["split_time_column"] == "timestamp"
    assert pd.Timestamp(run.data.tags["split_train_end"]) < pd.Timestamp("2011-12-31")
    assert int(run.data.params["train_rows"]) + int(run.data.params["holdout_rows"]) == 8645
    contexts = {d.tags[0].value for d in run.inputs.dataset_inputs}
    assert contexts == {"training", "holdout"}
    assert run.data.metrics["holdout_r2"] == pytest.approx(trained.evaluation.metrics["r2"])
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert len(children) == 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/feature_importance.png" in artifacts
    assert "evaluation/residual_vs_predicted.png" in artifacts
    assert set(trained.evaluation.slices) == {"season", "workingday"}


def test_run_publishes_summary_gate_and_leaderboard_artifacts(trained) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    keys = ["training-bikeshare", "gate-bikeshare", "leaderboard-bikeshare"]
    with get_client(sync_client=True) as client:
        # Every argument explicit: the defaults get a 422 from Prefect 3.8.8's own server.
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)),
            flow_run_filter=FlowRunFilter(),
            task_run_filter=None,  # not joined on task runs: the summary is the flow run's own
            limit=50,
            offset=0,
            sort=ArtifactSort.CREATED_DESC,
        )
    by_key = {a.key: a for a in found}
    assert set(by_key) == set(keys)
    summary = str(by_key["training-bikeshare"].data)
    assert trained.snapshot.fingerprint in summary
    assert "BLESSED" in summary
    assert "hist_gradient_boosting-0" in summary


def test_champion_model_serves_from_registry(settings: Settings, trained) -> None:
    from prefect_mlops.packaging import load_pipeline

    model = load_pipeline(f"models:/{MODEL}@champion", settings.tracking_uri)
    holdout = pd.read_csv(BIKESHARE_CSV).tail(5)
    predictions = model.predict(holdout.drop(columns=["bikers", "casual", "registered"]))
    assert len(predictions) == 5
    assert np.isfinite(predictions).all()


def test_rerun_on_same_snapshot_and_config_registers_nothing_and_names_the_version(
    settings: Settings, fast_config_path: Path, trained
) -> None:
    again = run_training(fast_config_path)
    assert again.snapshot.fingerprint == trained.snapshot.fingerprint
    assert (again.rerun_of, again.model_version.version) == ("1", "1")
    assert again.best is None and again.evaluation is None and again.mlflow_run_id is None
    assert not again.promoted
    assert again.promotion_reason.endswith(f"already trained {MODEL} v1; nothing registered")
    client = client_for(settings)
    assert [str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")] == ["1"]
    assert aliases(client) == {"challenger": "1", "champion": "1"}
    experiment = client.get_experiment_by_name(MODEL).experiment_id
    assert len(client.search_runs([experiment], "tags.mlflow.parentRunId IS NULL")) == 1
    assert f"Rerun of `{MODEL}` v1" in latest_summary()


def latest_summary() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        latest = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["training-bikeshare"])),
            flow_run_filter=None,
            task_run_filter=None,
            limit=1,
            offset=0,
            sort=ArtifactSort.CREATED_DESC,
        )
    return str(latest[0].data)


def test_recent_and_full_retrains_are_compared_only_on_rows_neither_trained_on(
    settings: Settings, tmp_path: Path, fast_config_path: Path, trained
) -> None:
    from tasks.registry import promote_model

    client = client_for(settings)
    full_end = pd.Timestamp(client.get_run(trained.mlflow_run_id).data.tags["split_train_end"])
    recent = training_flow(TrainingParams(config_path=str(fast_config_path), window="recent"))
    assert recent.decision is not None and recent.decision.champion is not None
    rows = recent.decision.champion.compared_on
    assert recent.decision.champion.version == "1" and rows is not None
    assert pd.Timestamp(str(rows.first)) > full_end  # after the full champion's training
    assert (
        rows.rows
        == rows.of_holdout
        == recent.snapshot.rows
        - int(client.get_run(str(recent.mlflow_run_id)).data.params["train_rows"])
    )

    # The reverse: the recent model is champion, a full-data challenger (another config).
    promote_model.fn(MODEL, "2", "by hand", settings)
    recent_end = pd.Timestamp(
        client.get_run(str(recent.mlflow_run_id)).data.tags["split_train_end"]
    )
    raw = fast_config_dict(seed=7)  # another config: not a rerun; blessed whatever it scores
    raw["gate"]["champion_tolerance"] = 10.0
    full = run_training(write_config(tmp_path / "seed.yaml", raw))
    assert full.rerun_of is None and full.decision is not None
    score = full.decision.champion
    assert score is not None and score.version == "2" and score.compared_on is not None
    assert pd.Timestamp(str(score.compared_on.first)) > recent_end
    assert 0 < score.compared_on.rows < score.compared_on.of_holdout
    compared = score.compared_on
    assert f"on {compared.rows:,} of {compared.of_holdout:,} holdout rows" in full.promotion_reason


def test_corrupted_data_stops_before_training_and_leaves_registry_untouched(
    settings: Settings, tmp_path: Path, trained
) -> None:
    corrupted = pd.read_csv(BIKESHARE_CSV)
    corrupted["temp"] = corrupted["temp"].astype(object)
    corrupted.loc[:50, "temp"] = "hot"
    corrupted.loc[:10, "bikers"] = None
    corrupted.to_csv(tmp_path / "corrupted.csv", index=False)
    raw = fast_config_dict()
    raw["source"]["path"] = str(tmp_path / "corrupted.csv")
    config_path = write_config(tmp_path / "corrupted.yaml", raw)

    with pytest.raises(DataValidationError) as failure:
        run_training(config_path)

    message = str(failure.value)
    assert "temp" in message
    assert "bikers" in message
    client = client_for(settings)
    assert [str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")] == ["1"]
    assert aliases(client) == {"challenger": "1", "champion": "1"}
    quarantined = list((settings.quarantine_dir).rglob("*.parquet"))
    assert len(quarantined) == 1
    assert len(pd.read_parquet(quarantined[0])) == len(corrupted)


def test_model_below_thresholds_is_not_registered(
    settings: Settings, tmp_path: Path, trained
) -> None:
    raw = fast_config_dict(gate={"primary_metric": "rmse", "thresholds": {"r2": {"min": 0.999}}})
    config_path = write_config(tmp_path / "strict.yaml", raw)

    with pytest.raises(ModelGateError, match=r"r2 >= 0.999"):
        run_training(config_path)

    client = client_for(settings)
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 1
    assert aliases(client) == {"challenger": "1", "champion": "1"}
    failed = client.search_runs(
        [client.get_experiment_by_name(MODEL).experiment_id], "attributes.status = 'RUNNING'"
    )
    assert failed == []


@pytest.fixture
def multiclass_config_path(settings: Settings, tmp_path: Path) -> Path:
    """A 3-class problem on the bikeshare rows, from a SQLite table, with its own suite."""
    import sqlalchemy as sa

    frame = pd.read_csv(BIKESHARE_CSV).drop(columns=["casual", "registered"])
    frame["demand"] = pd.qcut(frame.pop("bikers"), 3, labels=["low", "mid", "high"]).astype(str)
    frame.loc[frame.sample(frac=0.05, random_state=0).index, "hum"] = np.nan
    url = f"sqlite:///{tmp_path / 'rides.db'}"
    engine = sa.create_engine(url)
    frame.to_sql("rides", engine, index=False)
    engine.dispose()
    raw = fast_config_dict(
        name="rides-demand-class",
        task="classification",
        target="demand",
        source={"kind": "sql", "url": url, "table": "rides"},
        exclude=[],
        split={"strategy": "stratified", "test_size": 0.2},
        gate={"primary_metric": "f1", "thresholds": {"accuracy": {"min": 0.5}}},
        candidates=[
            {"name": "logreg", "estimator": "logistic_regression"},
            {"name": "forest", "estimator": "random_forest", "params": {"n_estimators": 20}},
        ],
        validation={"suite": "rides", "policy": "fail"},
        registered_model_name="rides-demand-class",
        datetime_features=["timestamp"],
    )
    path = write_config(tmp_path / "rides.yaml", raw)
    init_suites(load_config(path), settings, frame)
    return path


def test_multiclass_sql_dataset_goes_through_the_same_flow(
    settings: Settings, multiclass_config_path: Path
) -> None:
    result = run_training(multiclass_config_path)
    assert result.promoted
    assert set(result.evaluation.metrics) == {
        *("accuracy", "balanced_accuracy", "f1", "roc_auc", "pr_auc", "log_loss"),
        *("recall_high", "recall_low", "recall_mid"),
    }
    assert result.evaluation.metrics["accuracy"] > 0.5
    client = client_for(settings)
    assert aliases(client, "rides-demand-class")["champion"] == "1"
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id, "evaluation")}
    assert "evaluation/confusion_matrix.png" in artifacts


def test_traversal_model_name_is_refused_at_parse_with_nothing_written(
    settings: Settings, tmp_path: Path
) -> None:
    from prefect_mlops.errors import ConfigError

    raw = fast_config_dict(registered_model_name="../../etc")
    config_path = write_config(tmp_path / "traversal.yaml", raw)
    before = sorted(tmp_path.rglob("*"))

    with pytest.raises(ConfigError, match=r"registered_model_name: .*path separator"):
        run_training(config_path)

    assert sorted(tmp_path.rglob("*")) == before
    assert not (tmp_path / "etc").exists() and not (tmp_path.parent / "etc").exists()
    client = client_for(settings)
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert client.search_runs(experiments) == []
    assert client.search_registered_models() == []


def _warned_config(tmp_path: Path, frame: pd.DataFrame, label: str) -> Path:
    frame.to_csv(tmp_path / f"{label}.csv", index=False)
    raw = fast_config_dict(validation={"suite": "bikeshare", "policy": "warn"})
    raw["source"]["path"] = str(tmp_path / f"{label}.csv")
    return write_config(tmp_path / f"{label}.yaml", raw)


def _assert_champion_kept_and_challenger_waits(settings: Settings, result) -> None:
    assert not result.validation.success
    assert not result.promoted
    assert "`mlops promote 2`" in result.promotion_reason
    assert "no comparable champion" not in result.promotion_reason
    client = client_for(settings)
    assert aliases(client) == {"challenger": "2", "champion": "1"}
    assert client.get_model_version(MODEL, "2").tags["promotion_reason"] == (
        result.promotion_reason
    )


def test_renamed_column_under_warn_keeps_the_champion(
    settings: Settings, tmp_path: Path, trained
) -> None:
    renamed = pd.read_csv(BIKESHARE_CSV).rename(columns={"temp": "temperature"})
    result = run_training(_warned_config(tmp_path, renamed, "renamed"))
    _assert_champion_kept_and_challenger_waits(settings, result)
    assert "temp" in result.validation.describe()


def test_decimal_comma_column_under_warn_keeps_the_champion(
    settings: Settings, tmp_path: Path, trained
) -> None:
    frame = pd.read_csv(BIKESHARE_CSV)
    frame["temp"] = frame["temp"].map(lambda v: f"{v}".replace(".", ","))
    result = run_training(_warned_config(tmp_path, frame, "decimal-comma"))
    _assert_champion_kept_and_challenger_waits(settings, result)
    summary = latest_summary()
    assert "champion kept" in summary
    assert "`mlops promote 2`" in summary
