"""The current window: recent rows of the prediction log, or a dataset, frozen as Parquet."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.errors import IngestError, MonitoringError
from prefect_mlops.io import write_parquet_atomic
from prefect_mlops.monitoring.records import (
    PREDICTION,
    PROBABILITIES,
    WindowRef,
    WindowSpec,
)
from prefect_mlops.names import confined
from prefect_mlops.prediction_log import (
    FEEDBACK_COLUMNS,
    PREDICTION_COLUMNS,
    last_logged,
    logged_models,
    read_model_log,
)
from prefect_mlops.settings import Settings
from prefect_mlops.sources import safe_url, source_for_path

# The log's column contract, named once (its order is prefect_mlops.prediction_log's).
(
    REQUEST_ID,
    ROW_INDEX,
    LOGGED_AT,
    MODEL_NAME,
    MODEL_VERSION,
    FEATURES,
    LOGGED_PREDICTION,
    PROBABILITY_COLUMN,
    LOG_SOURCE,
) = PREDICTION_COLUMNS
*_, LABEL = FEEDBACK_COLUMNS


def log_frame(
    spec: WindowSpec, model_name: str, config: PipelineConfig, directory: Path
) -> pd.DataFrame:
    """Logged predictions of `model_name` inside the window, from the sources the spec names
    (online traffic by default); labels become the target column.

    Only that model's rows are read, with its own features (`read_model_log` keeps them apart
    from the log's bookkeeping, so a feature named like a log column or a partition key is the
    feature). The time a prediction was made stands in for the split clock (e.g. `timestamp`)
    when the requests did not carry it: live rows are scored as they happen.
    """
    where = f"prediction log {safe_url(spec.log_url) if spec.log_url else directory}"
    since = None
    if spec.hours is not None or spec.days is not None:
        span = pd.Timedelta(hours=spec.hours or 0.0) + pd.Timedelta(days=spec.days or 0.0)
        since = (pd.Timestamp.now(UTC) - span).timestamp()
    try:
        read = read_model_log(
            model_name, spec.log_url, directory, since=since, sources=spec.sources
        )
    except (ValueError, OSError, pa.ArrowException, sa.exc.SQLAlchemyError) as exc:
        # SQLAlchemy names the missing table; pyarrow names the unreadable file
        raise IngestError(f"cannot read the {where} to monitor {model_name}: {exc}") from exc
    rows, features = read.rows, read.features
    if spec.rows is not None:
        order = rows.sort_values(LOGGED_AT, kind="stable").index[-spec.rows :]
        rows, features = rows.loc[order], features.loc[order]
    frame = features.assign(**{PREDICTION: rows[LOGGED_PREDICTION], config.target: rows[LABEL]})
    if PROBABILITY_COLUMN in rows.columns and rows[PROBABILITY_COLUMN].notna().any():
        frame[PROBABILITIES] = [probability_list(p) for p in rows[PROBABILITY_COLUMN]]
    clock = config.split.time_column if config.split.strategy == "time" else None
    if clock and clock not in features.columns:
        frame[clock] = pd.to_datetime(rows[LOGGED_AT], utc=True).dt.tz_localize(None)
    return frame.reset_index(drop=True)


def probability_list(value: Any) -> list[float] | None:
    """A row's logged class probabilities as floats (the SQL log keeps them as JSON text)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    values = orjson.loads(value) if isinstance(value, str | bytes) else value
    return [float(v) for v in values]


# What a wrong host, root or URL looks like from the reading side, and where to look.
CHECK_LOCATION = (
    "check that this host reads the log the service writes: MLOPS_PREDICTION_LOG_URL (a "
    "database), else MLOPS_ARTIFACT_ROOT (the Parquet log is <root>/prediction_log), or the "
    "window's log_url / log_dir"
)


class CurrentWindow(NamedTuple):
    """The current rows and where they were read; for an empty log window, when the model's
    latest prediction was logged there (the log is right, the window was quiet)."""

    frame: pd.DataFrame
    location: str
    last_logged: float | None = None


def read_window(
    spec: WindowSpec, model_name: str, config: PipelineConfig, settings: Settings
) -> CurrentWindow:
    """The current rows: an explicit dataset (its last `rows`), or the prediction log window.

    A dataset is read as `prefect_mlops.sources` reads any file (one without rows is refused).
    A log that is not there, or that holds no prediction of the model, is refused naming the
    place read (a wrong host, root or URL must not pass as a quiet window); a window without
    rows of a log that has the model's rows is returned empty, with the model's last logged
    time. Regression labels are made numeric: the log stores them as JSON, a CSV may hold blanks.
    """
    if spec.dataset_path:
        try:
            frame = source_for_path(spec.dataset_path).read()
        except IngestError as exc:
            raise IngestError(f"cannot monitor {model_name}: {exc}") from exc
        frame = frame.tail(spec.rows).reset_index(drop=True) if spec.rows else frame
        current = CurrentWindow(frame, f"dataset {spec.dataset_path}")
    else:
        directory = (
            Path(spec.log_dir).expanduser().absolute()
            if spec.log_dir
            else settings.prediction_log_dir
        )
        if spec.log_url is None and settings.prediction_log_url:
            spec = spec.model_copy(update={"log_url": settings.prediction_log_url})
        check_log_exists(model_name, spec.log_url, directory)
        frame = log_frame(spec, model_name, config, directory)
        where = safe_url(spec.log_url) if spec.log_url else str(directory)
        last = None if len(frame) else logged_time(model_name, spec, directory, where)
        current = CurrentWindow(frame, where, last)
    frame = current.frame
    if config.target in frame.columns and config.task == TaskType.regression:
        frame[config.target] = pd.to_numeric(frame[config.target], errors="coerce")
    return current


def window_frame(
    spec: WindowSpec, model_name: str, config: PipelineConfig, settings: Settings
) -> pd.DataFrame:
    """The current rows alone (see `read_window`)."""
    return read_window(spec, model_name, config, settings).frame


def check_log_exists(model_name: str, url: str | None, directory: Path) -> None:
    """Refuse a prediction log that is not there: a Parquet folder that does not exist, or a
    SQLite URL whose file does not (checked before reading: connecting would create it)."""
    if url:
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            return  # not a URL: the reader names it (IngestError)
        database = parsed.database or ""
        if (
            parsed.get_backend_name() != "sqlite"
            or database in ("", ":memory:")
            or database.startswith("file:")
            or Path(database).is_file()
        ):
            return  # a server database: a missing table is named when it is read
        missing = f"{safe_url(url)} does not exist (no file {Path(database).absolute()})"
    elif directory.is_dir():
        return
    else:
        missing = f"{directory} does not exist"
    raise MonitoringError(
        f"cannot monitor {model_name}: the prediction log {missing}; {CHECK_LOCATION}"
    )


def logged_time(model_name: str, spec: WindowSpec, directory: Path, where: str) -> float:
    """When the model's latest prediction of the window's sources was logged; a log holding
    none is refused, naming what it does hold."""
    url = spec.log_url
    last = last_logged(model_name, url, directory, spec.sources)
    if last is not None:
        return last
    if last_logged(model_name, url, directory) is not None:
        held = "it holds rows of it from other sources: see the window's sources"
    else:
        models = logged_models(url, directory)
        held = f"it holds rows of {', '.join(models[:10])}" if models else "it holds no rows"
    raise MonitoringError(
        f"cannot monitor {model_name}: the prediction log {where} holds no "
        f"{'/'.join(spec.sources)} prediction of {model_name} ({held}); {CHECK_LOCATION}"
    )


def run_folder(settings: Settings, model_name: str) -> Path:
    """A new folder for one monitoring run of a model: window, predictions, reports, summary."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run = f"{stamp}-{uuid.uuid4().hex[:6]}"
    return confined(settings.monitoring_dir, model_name, run, field="registered_model_name")


def freeze_window(
    frame: pd.DataFrame,
    spec: WindowSpec,
    config: PipelineConfig,
    folder: Path,
    location: str = "",
    last_logged: float | None = None,
) -> WindowRef:
    """Write the window as `current.parquet` in `folder` (it may have no rows); `location` and
    `last_logged` are `CurrentWindow`'s."""
    path = folder / "current.parquet"
    write_parquet_atomic(frame, path)
    labeled = int(frame[config.target].notna().sum()) if config.target in frame.columns else 0
    start, end = time_span(frame, config)
    return WindowRef(
        uri=str(path),
        rows=len(frame),
        labeled_rows=labeled,
        source=spec.describe(),
        has_logged_predictions=PREDICTION in frame.columns,
        has_logged_probabilities=PROBABILITIES in frame.columns,
        start=start,
        end=end,
        location=location,
        last_logged=(
            None
            if last_logged is None
            else datetime.fromtimestamp(last_logged, UTC).isoformat(timespec="seconds")
        ),
    )


def time_span(frame: pd.DataFrame, config: PipelineConfig) -> tuple[str | None, str | None]:
    """The first and last time of the window's rows (ISO, to the second) on the split's clock
    (a log window has it from the logging time), or None when the rows carry no time."""
    clock = config.split.time_column
    if not clock or clock not in frame.columns or frame.empty:
        return None, None
    times = pd.to_datetime(frame[clock], errors="coerce", utc=True).dropna()
    if times.empty:
        return None, None
    return (
        times.min().isoformat(timespec="seconds"),
        times.max().isoformat(timespec="seconds"),
    )
