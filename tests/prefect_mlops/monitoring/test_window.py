"""The current window: the prediction log read through its contract, datasets, the frozen file."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from prefect_mlops.config import PipelineConfig
from prefect_mlops.errors import IngestError, MonitoringError
from prefect_mlops.monitoring import PREDICTION, WindowSpec
from prefect_mlops.monitoring.window import (
    freeze_window,
    log_frame,
    read_window,
    run_folder,
    window_frame,
)
from prefect_mlops.prediction_log import FeedbackRecord, ParquetStore, PredictionRecord, SqlStore
from prefect_mlops.settings import Settings

MODEL = "bikeshare-demand"


def record(request: str, age_hours: float, model: str = MODEL) -> PredictionRecord:
    return PredictionRecord(
        request_id=request,
        timestamp=time.time() - age_hours * 3600,
        model_name=model,
        model_version="1",
        columns={"temp": [0.1, 0.2], "hr": [1, 2]},
        predictions=np.array([10.0, 20.0]),
        probabilities=None,
    )


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """A Parquet log: an old and a new request of the model, one of another model, one label."""
    store = ParquetStore(tmp_path / "log")
    store.append_predictions([record("old", 48), record("new", 1), record("other", 1, "x")])
    store.append_feedback([FeedbackRecord("new", 1, 25.0, time.time())])
    return tmp_path / "log"


def test_window_spec_refuses_two_time_bounds() -> None:
    with pytest.raises(ValidationError):
        WindowSpec(hours=1, days=1)
    with pytest.raises(ValidationError):
        WindowSpec(dataset_path="x.csv", days=1)
    assert WindowSpec(rows=10).describe() == "prediction log: last 10 rows"


def test_log_window_reads_recent_rows_of_the_model_with_labels(
    log_dir: Path, config: PipelineConfig
) -> None:
    frame = log_frame(WindowSpec(hours=24), MODEL, config, log_dir)
    assert list(frame["temp"]) == [0.1, 0.2]
    assert frame["bikers"].isna().tolist() == [True, False]
    # the prediction time stands in for the split clock the requests did not carry
    assert set(frame.columns) == {"temp", "hr", PREDICTION, "bikers", "timestamp"}
    assert frame["timestamp"].notna().all()


def test_log_window_keeps_the_last_rows(log_dir: Path, config: PipelineConfig) -> None:
    frame = log_frame(WindowSpec(rows=3), MODEL, config, log_dir)
    assert frame[PREDICTION].tolist() == [20.0, 10.0, 20.0]  # old's second row, then new's


def test_log_window_is_read_from_the_settings_folder(
    log_dir: Path, config: PipelineConfig, tmp_path: Path
) -> None:
    log_dir.rename(tmp_path / "prediction_log")
    frame = window_frame(WindowSpec(), MODEL, config, Settings(artifact_root=tmp_path))
    assert len(frame) == 4


def test_dataset_window_keeps_its_last_rows(tmp_path: Path, config: PipelineConfig) -> None:
    path = tmp_path / "july.csv"
    pd.DataFrame({"temp": [0.1, 0.2, 0.3], "bikers": ["1", "", "3"]}).to_csv(path, index=False)
    frame = window_frame(
        WindowSpec(dataset_path=str(path), rows=2), MODEL, config, Settings(artifact_root=tmp_path)
    )
    assert frame["temp"].tolist() == [0.2, 0.3]
    assert frame["bikers"].isna().tolist() == [True, False]  # labels are numbers or missing


def test_missing_or_empty_dataset_is_refused_by_name(
    tmp_path: Path, config: PipelineConfig
) -> None:
    settings = Settings(artifact_root=tmp_path)
    missing = WindowSpec(dataset_path=str(tmp_path / "gone.parquet"))
    with pytest.raises(IngestError, match=r"not found: .*gone\.parquet"):
        window_frame(missing, MODEL, config, settings)
    empty = tmp_path / "empty.parquet"
    pd.DataFrame({"temp": pd.Series([], dtype=float)}).to_parquet(empty)
    with pytest.raises(IngestError, match="has no rows"):
        window_frame(WindowSpec(dataset_path=str(empty)), MODEL, config, settings)


def test_empty_log_window_has_no_rows(tmp_path: Path, config: PipelineConfig) -> None:
    frame = log_frame(WindowSpec(hours=1), MODEL, config, tmp_path / "no-log")
    assert frame.empty
    assert PREDICTION in frame.columns and "bikers" in frame.columns


def test_frozen_window_counts_rows_and_labels(tmp_path: Path, config: PipelineConfig) -> None:
    folder = run_folder(Settings(artifact_root=tmp_path), MODEL)
    assert folder.parent == tmp_path / "monitoring" / MODEL
    frame = pd.DataFrame({"temp": [0.1, 0.2], "bikers": [1.0, None], PREDICTION: [1.0, 2.0]})
    ref = freeze_window(frame, WindowSpec(rows=2), config, folder)
    assert (ref.rows, ref.labeled_rows, ref.has_logged_predictions) == (2, 1, True)
    assert ref.source == "prediction log: last 2 rows"
    assert pd.read_parquet(ref.uri).equals(frame)


def test_log_window_holds_online_rows_unless_told_otherwise(
    tmp_path: Path, config: PipelineConfig
) -> None:
    store = ParquetStore(tmp_path / "log")
    store.append_predictions([record("live", 1), record("nightly", 1)._replace(source="batch")])
    online = log_frame(WindowSpec(), MODEL, config, tmp_path / "log")
    both = log_frame(WindowSpec(sources=["online", "batch"]), MODEL, config, tmp_path / "log")
    assert len(online) == 2 and len(both) == 4
    assert WindowSpec(sources=["batch"]).describe() == "prediction log (batch rows): all rows"


def test_a_feature_named_date_is_the_feature_in_the_window(
    tmp_path: Path, config: PipelineConfig
) -> None:
    sent = [pd.Timestamp("2020-05-01"), pd.Timestamp("2020-05-02")]
    logged = record("r", 1)._replace(columns={"date": sent, "day": ["mon", None]})
    ParquetStore(tmp_path / "log").append_predictions([logged])
    frame = log_frame(WindowSpec(hours=24), MODEL, config, tmp_path / "log")
    assert frame["date"].tolist() == sent and frame["day"].tolist() == ["mon", None]


def test_logged_probabilities_reach_the_window(tmp_path: Path, config: PipelineConfig) -> None:
    from prefect_mlops.monitoring import PROBABILITIES

    store = ParquetStore(tmp_path / "log")
    store.append_predictions(
        [
            PredictionRecord(
                request_id="p",
                timestamp=time.time(),
                model_name=MODEL,
                model_version="1",
                columns={"temp": [0.1, 0.2], "hr": [1, 2]},
                predictions=np.array([0, 1]),
                probabilities=np.array([[0.8, 0.2], [0.3, 0.7]]),
            )
        ]
    )
    frame = log_frame(WindowSpec(hours=1), MODEL, config, tmp_path / "log")
    assert frame[PROBABILITIES].tolist() == [[0.8, 0.2], [0.3, 0.7]]
    window = freeze_window(frame, WindowSpec(hours=1), config, tmp_path)
    assert window.has_logged_probabilities and window.start and window.end


def test_log_window_reads_the_shared_log_url_by_default(
    tmp_path: Path, config: PipelineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's MLOPS_SERVE_LOG_URL (set for service and worker alike by `mlops up
    --profile production`) is where monitoring reads, with no --log-url of its own."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    SqlStore(url).append_predictions([record("new", 1)])
    monkeypatch.setenv("MLOPS_SERVE_LOG_URL", url)
    settings = Settings(artifact_root=tmp_path / "empty")
    assert settings.prediction_log_url == url
    assert len(window_frame(WindowSpec(), MODEL, config, settings)) == 2
    monkeypatch.delenv("MLOPS_SERVE_LOG_URL")
    with pytest.raises(MonitoringError, match=f"{tmp_path / 'empty'}.* does not exist"):
        window_frame(
            WindowSpec(), MODEL, config, settings.model_copy(update={"prediction_log_url": None})
        )


def test_missing_sqlite_log_is_refused_by_name_and_not_created(
    tmp_path: Path, config: PipelineConfig
) -> None:
    url = f"sqlite:///{tmp_path / 'other-host.db'}"
    with pytest.raises(MonitoringError, match=f"cannot monitor {MODEL}: the prediction log {url}"):
        window_frame(WindowSpec(log_url=url), MODEL, config, Settings(artifact_root=tmp_path))
    assert not (tmp_path / "other-host.db").exists()


def test_unreachable_sql_log_is_named_with_its_password_masked(
    tmp_path: Path, config: PipelineConfig
) -> None:
    url = "postgresql://mlops:s3cret@127.0.0.1:1/predictions"  # nothing listens on port 1
    with pytest.raises(IngestError) as refused:
        window_frame(WindowSpec(log_url=url), MODEL, config, Settings(artifact_root=tmp_path))
    message = str(refused.value)
    assert "prediction log postgresql://mlops:***@127.0.0.1:1/predictions" in message
    assert MODEL in message and "s3cret" not in message


def test_sql_log_without_the_model_is_refused_naming_what_it_holds(
    tmp_path: Path, config: PipelineConfig
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    SqlStore(url).append_predictions([record("r", 1, model="x")])
    settings = Settings(artifact_root=tmp_path)
    with pytest.raises(MonitoringError, match=r"holds no online prediction of .* rows of x\)"):
        window_frame(WindowSpec(log_url=url), MODEL, config, settings)


def test_quiet_log_window_is_empty_with_the_models_last_logged_time(
    log_dir: Path, config: PipelineConfig, tmp_path: Path
) -> None:
    settings = Settings(artifact_root=tmp_path)
    current = read_window(WindowSpec(hours=0.5, log_dir=str(log_dir)), MODEL, config, settings)
    assert current.frame.empty and current.location == str(log_dir)
    assert current.last_logged == pytest.approx(time.time() - 3600, abs=60)  # "new", not "x"
    url = f"sqlite:///{tmp_path / 'log.db'}"
    SqlStore(url).append_predictions([record("old", 48), record("new", 1)])
    quiet = read_window(WindowSpec(hours=0.5, log_url=url), MODEL, config, settings)
    assert quiet.frame.empty and quiet.last_logged == pytest.approx(current.last_logged, abs=60)
    window = freeze_window(quiet.frame, WindowSpec(hours=0.5), config, tmp_path, quiet.location)
    assert window.rows == 0 and window.location == url
