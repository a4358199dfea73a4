"""The batch scoring flow on the bikeshare data, with a real registered model and GX project."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from mlflow.tracking import MlflowClient

from flows.scoring import ScoringParams, scoring_flow
from prefect_mlops.config import PipelineConfig
from prefect_mlops.destinations import CsvDestination, ParquetDestination, SqlDestination
from prefect_mlops.errors import DataValidationError
from prefect_mlops.estimators import build_model
from prefect_mlops.features import infer_schema
from prefect_mlops.monitoring import WindowSpec
from prefect_mlops.monitoring.window import log_frame
from prefect_mlops.packaging import log_sklearn_model
from prefect_mlops.prediction_log import ParquetStore, PredictionRecord, read_prediction_log
from prefect_mlops.results import CandidateSpec
from prefect_mlops.settings import Settings
from prefect_mlops.sources import CsvSource, SqlSource


@pytest.fixture
def champion(settings: Settings, fast_config: PipelineConfig, bikeshare: pd.DataFrame):
    """A Ridge pipeline on bikeshare, registered as the config's model with alias champion."""
    schema = infer_schema(bikeshare, fast_config)
    spec = CandidateSpec(name="ridge", estimator="linear", params={}, index=0)
    model = build_model(spec, schema, 0).fit(bikeshare[schema.features], bikeshare["bikers"])
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.create_experiment(
        "scoring", artifact_location=(settings.local_root / "mlflow").resolve().as_uri()
    )
    run = client.create_run(experiment)
    example = bikeshare[schema.features].head(5)
    mlflow.set_tracking_uri(settings.tracking_uri)
    info = log_sklearn_model(model, example, run.info.run_id)
    name = fast_config.registered_model_name
    client.create_registered_model(name)
    version = client.create_model_version(name, source=info.model_uri, run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return model, schema


def _params(config_path: Path, source: Path, output: Path, kind: str = "parquet") -> ScoringParams:
    return ScoringParams(
        config_path=str(config_path),
        source=CsvSource(path=str(source)),
        destination={"parquet": ParquetDestination, "csv": CsvDestination}[kind](path=str(output)),
        chunk_rows=400,
    )


def test_scoring_writes_every_row_with_the_champion_version(
    champion, settings, fast_config_path, bikeshare, tmp_path
) -> None:
    model, schema = champion
    rows = bikeshare.drop(columns=["bikers"]).head(1000)
    rows.to_csv(tmp_path / "input.csv", index=False)
    summary = scoring_flow(
        _params(fast_config_path, tmp_path / "input.csv", tmp_path / "out.parquet")
    )
    scored = pd.read_parquet(tmp_path / "out.parquet")
    assert (summary.rows, summary.chunks, summary.model_version) == (1000, 3, "1")
    assert set(scored["model_version"]) == {"1"}
    np.testing.assert_allclose(scored["prediction"], model.predict(rows[schema.features]))


def test_scored_rows_are_logged_as_batch_and_leave_the_online_window_unchanged(
    champion, settings, fast_config_path, fast_config, bikeshare, tmp_path
) -> None:
    model, schema = champion
    log_dir = settings.local_root / "prediction_log"
    served = bikeshare[schema.features].head(50)
    live = PredictionRecord(
        "live",
        time.time(),
        fast_config.registered_model_name,
        "1",
        {str(c): served[c].tolist() for c in served.columns},
        model.predict(served),
        None,
    )
    ParquetStore(log_dir).append_predictions([live])
    window = partial(log_frame, model_name=fast_config.registered_model_name, config=fast_config)
    before = window(WindowSpec(hours=24), directory=log_dir)
    bikeshare.drop(columns=["bikers"]).head(500).to_csv(tmp_path / "input.csv", index=False)
    scoring_flow(_params(fast_config_path, tmp_path / "input.csv", tmp_path / "out.csv", "csv"))
    log = read_prediction_log(directory=log_dir)
    batch = log.loc[log["source"] == "batch"]
    assert len(batch) == 500 and set(batch["model_version"]) == {"1"}
    # the nightly run does not move the online window, so its drift is unchanged
    pd.testing.assert_frame_equal(window(WindowSpec(hours=24), directory=log_dir), before)
    both = window(WindowSpec(hours=24, sources=["online", "batch"]), directory=log_dir)
    assert len(before) == 50 and len(both) == 550


def test_invalid_input_stops_scoring_before_anything_is_written(
    champion, settings, fast_config_path, bikeshare, tmp_path
) -> None:
    rows = bikeshare.drop(columns=["bikers"]).head(500).assign(hum=-5.0)
    rows.to_csv(tmp_path / "input.csv", index=False)
    with pytest.raises(DataValidationError, match="scoring data validation failed"):
        scoring_flow(_params(fast_config_path, tmp_path / "input.csv", tmp_path / "out.parquet"))
    assert not (tmp_path / "out.parquet").exists()


def _sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


def test_sql_source_scored_in_chunks_into_a_sql_table_and_the_sql_log(
    champion, settings, fast_config_path, bikeshare, tmp_path
) -> None:
    model, schema = champion
    rows = bikeshare.drop(columns=["bikers"]).head(1000)
    source, destination, log = (_sqlite(tmp_path / f"{n}.db") for n in ("src", "dst", "log"))
    rows.to_sql("hours", sa.create_engine(source), index=False)
    params = ScoringParams(
        config_path=str(fast_config_path),
        source=SqlSource(url=source, table="hours"),
        destination=SqlDestination(url=destination, table="scored"),
        chunk_rows=400,
        log_url=log,
    )
    summary = scoring_flow(params)
    scored = pd.read_sql_table("scored", sa.create_engine(destination))
    logged = read_prediction_log(url=log)
    assert (summary.rows, summary.chunks, summary.output) == (1000, 3, f"{destination}#scored")
    assert len(scored) == 1000 and set(scored["model_version"]) == {"1"}
    np.testing.assert_allclose(scored["prediction"], model.predict(rows[schema.features]))
    assert len(logged) == 1000 and set(logged["model_version"]) == {"1"}
    assert logged["request_id"].nunique() == 3  # one log entry per chunk


def test_sql_query_source_appends_to_an_existing_table(
    champion, settings, fast_config_path, bikeshare, tmp_path
) -> None:
    source, destination = _sqlite(tmp_path / "crm.db"), _sqlite(tmp_path / "warehouse.db")
    rows = bikeshare.drop(columns=["bikers"]).head(600)
    rows.to_sql("hours", sa.create_engine(source), index=False)
    params = ScoringParams(
        config_path=str(fast_config_path),
        source=SqlSource(url=source, query="SELECT * FROM hours WHERE season = 1"),
        destination=SqlDestination(url=destination, table="scored"),
        chunk_rows=250,
    )
    first = scoring_flow(params)
    scoring_flow(params)
    scored = pd.read_sql_table("scored", sa.create_engine(destination))
    assert first.rows == int((rows["season"] == 1).sum()) > 250
    assert len(scored) == 2 * first.rows and set(scored["season"]) == {1}
    log = read_prediction_log(directory=settings.local_root / "prediction_log")
    assert len(log) == 2 * first.rows


def test_one_sqlite_file_as_source_and_destination_is_refused_up_front(tmp_path) -> None:
    url = _sqlite(tmp_path / "warehouse.db")
    with pytest.raises(ValueError, match=r"destination\.url is the SQLite file of source\.url"):
        ScoringParams(
            source=SqlSource(url=url, table="hours"),
            destination=SqlDestination(url=f"sqlite:///{tmp_path}/./warehouse.db", table="scored"),
        )


@pytest.fixture
def warn_config_path(fast_config_path: Path, tmp_path: Path) -> Path:
    """The fast config with validation policy warn: input errors reach the scoring step."""
    from tests.conftest import fast_config_dict, write_config

    raw = fast_config_dict(validation={"suite": "bikeshare", "policy": "warn"})
    return write_config(tmp_path / "warn.yaml", raw)


def _refused(config_path: Path, source: object, tmp_path: Path) -> str:
    from prefect_mlops.errors import ScoringError

    params = ScoringParams(
        config_path=str(config_path),
        source=source,
        destination=ParquetDestination(path=str(tmp_path / "out.parquet")),
        chunk_rows=400,
    )
    with pytest.raises(ScoringError) as refused:
        scoring_flow(params)
    assert not (tmp_path / "out.parquet").exists()
    message = str(refused.value)
    assert "bikeshare-demand v1" in message
    return message


def test_empty_file_is_refused_naming_the_file_and_version(
    champion, settings, warn_config_path, tmp_path
) -> None:
    (tmp_path / "empty.csv").write_text("")
    message = _refused(warn_config_path, CsvSource(path=str(tmp_path / "empty.csv")), tmp_path)
    assert f"{tmp_path / 'empty.csv'}" in message and "empty" in message


def test_header_only_file_is_refused_naming_the_file_and_version(
    champion, settings, warn_config_path, bikeshare, tmp_path
) -> None:
    bikeshare.head(0).to_csv(tmp_path / "header.csv", index=False)
    message = _refused(warn_config_path, CsvSource(path=str(tmp_path / "header.csv")), tmp_path)
    assert f"{tmp_path / 'header.csv'} has no rows" in message
    assert "SimpleImputer" not in message


def test_missing_column_is_refused_naming_it_the_file_and_version(
    champion, settings, warn_config_path, bikeshare, tmp_path
) -> None:
    bikeshare.drop(columns=["bikers", "temp"]).head(50).to_csv(tmp_path / "in.csv", index=False)
    message = _refused(warn_config_path, CsvSource(path=str(tmp_path / "in.csv")), tmp_path)
    assert "missing column(s) ['temp']" in message and str(tmp_path / "in.csv") in message


def test_unreadable_file_is_refused_naming_the_file_and_version(
    champion, settings, warn_config_path, tmp_path
) -> None:
    from prefect_mlops.sources import ParquetSource

    (tmp_path / "fake.parquet").write_text("timestamp,season\n1,2\n")
    source = ParquetSource(path=str(tmp_path / "fake.parquet"))
    message = _refused(warn_config_path, source, tmp_path)
    assert f"cannot read parquet source {tmp_path / 'fake.parquet'}" in message


def test_missing_table_is_refused_naming_the_table_and_version(
    champion, settings, warn_config_path, bikeshare, tmp_path
) -> None:
    url = _sqlite(tmp_path / "src.db")
    bikeshare.head(5).to_sql("hours", sa.create_engine(url), index=False)
    message = _refused(warn_config_path, SqlSource(url=url, table="days"), tmp_path)
    assert "table 'days' not found" in message


def test_scoring_form_shows_only_the_chosen_kind_of_source_and_destination() -> None:
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(scoring_flow.fn).model_dump()
    definitions, form = schema["definitions"], schema["definitions"]["ScoringParams"]
    for field, kinds in (("source", {"csv", "parquet", "sql"}), ("destination", None)):
        union = form["properties"][field]
        assert union["discriminator"]["propertyName"] == "kind"
        assert kinds is None or set(union["discriminator"]["mapping"]) == kinds
        options = [definitions[o["$ref"].rsplit("/", 1)[-1]] for o in union["oneOf"]]
        # Each option carries only its own fields: a CSV source shows no SQL url or query.
        assert all(o["properties"]["kind"].get("const") for o in options)
    titles = {d["title"]: set(d["properties"]) for d in definitions.values()}
    assert titles["CSV file"] == {"kind", "path"}
    assert titles["SQL table or query"] == {"kind", "url", "table", "query"}


def test_a_scoring_run_is_named_and_shows_its_chunk_progress(
    champion, settings, fast_config_path, bikeshare, tmp_path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.client.schemas.sorting import ArtifactSort

    bikeshare.drop(columns=["bikers"]).head(1000).to_csv(tmp_path / "input.csv", index=False)
    params = _params(fast_config_path, tmp_path / "input.csv", tmp_path / "out.parquet")
    state = scoring_flow(params, return_state=True)
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])),
            flow_run_filter=None,
            task_run_filter=None,
            limit=20,
            offset=0,
            sort=ArtifactSort.CREATED_DESC,
        )
    assert run.name == f"score bikeshare-demand@champion: {tmp_path / 'input.csv'}"
    progress = {a.key: a for a in found if a.type == "progress"}
    scored = progress["scoring-progress-bikeshare-demand"]
    assert scored.data == 100.0
    assert "scored chunk 3/3 (1,000 rows)" in scored.description
    assert progress["scoring-validation-bikeshare-demand"].data == 100.0
