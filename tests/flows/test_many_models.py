"""Four models, one stack: train -> serve -> batch score -> monitor -> feedback -> monitor again.

Each dataset is made here (a few hundred rows, seeded): a binary classifier with string labels
and about 5% positives, a multiclass classifier with missing numbers and categories, a regressor
with string categories, and a regressor with a feature named `date` split on time. All four
share one Prefect server, one MLflow store and one artifact root, so one prediction log: each
model's monitoring window must hold only its own online rows and its own columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from flows.monitoring import MonitoringParams, monitoring_flow
from flows.scoring import ScoringParams, scoring_flow
from flows.training import TrainingParams, training_flow
from prefect_mlops.config import load_config
from prefect_mlops.destinations import CsvDestination
from prefect_mlops.expectations.profile import init_suites
from prefect_mlops.monitoring import DRIFT_DETECTED, WindowSpec
from prefect_mlops.monitoring.window import log_frame
from prefect_mlops.prediction_log import read_prediction_log
from prefect_mlops.settings import Settings
from prefect_mlops.sources import CsvSource
from serving.app import create_app
from serving.settings import ServeSettings
from tests.conftest import write_config

SERVED_ROWS = 60  # above monitoring's default min_labeled_rows (50): quality is measured
BATCH_ROWS = 40


@dataclass(frozen=True)
class Case:
    """One dataset and what sets its model apart."""

    name: str
    task: str
    target: str
    make: Callable[[int, int, bool], pd.DataFrame]  # rows, seed, shifted
    primary_metric: str
    estimator: str
    params: dict[str, Any]
    categorical: list[str]
    split: dict[str, Any]
    datetime_features: list[str]


def with_gaps(frame: pd.DataFrame, columns: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """About 5% of each named (imputed) feature missing."""
    frame = frame.copy()
    for column in columns:
        frame.loc[rng.random(len(frame)) < 0.05, column] = None
    return frame


def fraud_frame(rows: int, seed: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    fraud = rng.random(rows) < 0.05
    frame = pd.DataFrame(
        {
            "amount": rng.normal(90.0 if shifted else 50.0, 8.0, rows) + 40.0 * fraud,
            "age": rng.normal(60.0 if shifted else 40.0, 5.0, rows),
            "channel": rng.choice(["web", "shop", "phone"], rows),
            "is_fraud": np.where(fraud, "fraud", "ok"),
        }
    )
    return with_gaps(frame, ["amount", "channel"], rng)


def segment_frame(rows: int, seed: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    segment = rng.choice(["bronze", "silver", "gold"], rows)
    centre = pd.Series(segment).map({"bronze": 0.0, "silver": 4.0, "gold": 8.0}).to_numpy()
    frame = pd.DataFrame(
        {
            "visits": centre + rng.normal(6.0 if shifted else 0.0, 1.0, rows),
            "basket": centre * 2 + rng.normal(12.0 if shifted else 0.0, 1.0, rows),
            "region": rng.choice(["north", "south"], rows),
            "segment": segment,
        }
    )
    return with_gaps(frame, ["visits", "basket", "region"], rng)


def price_frame(rows: int, seed: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "lyon", "lille"], rows)
    size = rng.normal(110.0 if shifted else 60.0, 10.0, rows)
    rooms = rng.integers(1, 6, rows) + (4 if shifted else 0)
    premium = pd.Series(city).map({"paris": 300.0, "lyon": 150.0, "lille": 100.0}).to_numpy()
    frame = pd.DataFrame({"size": size, "rooms": rooms.astype(float), "city": city})
    frame["price"] = 3.0 * size + 20.0 * rooms + premium + rng.normal(0.0, 5.0, rows)
    return with_gaps(frame, ["size", "city"], rng)


def sales_frame(rows: int, seed: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = "2024-06-01" if shifted else "2023-01-01"
    date = pd.date_range(start, periods=rows, freq="D")
    temp = rng.normal(30.0 if shifted else 15.0, 3.0, rows)
    promo = rng.normal(5.0 if shifted else 0.0, 1.0, rows)
    frame = pd.DataFrame({"date": date, "temp": temp, "promo": promo})
    frame["store"] = rng.choice(["a", "b"], rows)
    frame["sales"] = 2.0 * temp + 10.0 * promo + date.dayofweek + rng.normal(0.0, 1.0, rows)
    return with_gaps(frame, ["temp", "store"], rng)


CASES = [
    Case(
        "h9-fraud", "classification", "is_fraud", fraud_frame, "balanced_accuracy",
        "logistic_regression", {"class_weight": "balanced"}, ["channel"],
        {"strategy": "stratified", "test_size": 0.25}, [],
    ),
    Case(
        "h9-segment", "classification", "segment", segment_frame, "accuracy",
        "logistic_regression", {}, ["region"], {"strategy": "stratified", "test_size": 0.25}, [],
    ),
    Case(
        "h9-price", "regression", "price", price_frame, "rmse", "linear", {}, ["city"],
        {"strategy": "random", "test_size": 0.25}, [],
    ),
    Case(
        "h9-sales", "regression", "sales", sales_frame, "rmse", "linear", {}, ["store"],
        {"strategy": "time", "time_column": "date", "test_size": 0.25}, ["date"],
    ),
]  # fmt: skip


def write_case_config(case: Case, root: Path) -> Path:
    """A small config of one model: one fast estimator, its own suite and registered name."""
    data = root / f"{case.name}.parquet"
    case.make(400, 0, False).to_parquet(data, index=False)
    raw = {
        "name": case.name,
        "task": case.task,
        "target": case.target,
        "source": {"kind": "parquet", "path": str(data)},
        "categorical_features": case.categorical,
        "datetime_features": case.datetime_features,
        "split": case.split,
        "tuning": {"cv_folds": 2, "max_configs_per_candidate": 1},
        "candidates": [
            {"name": case.estimator, "estimator": case.estimator, "params": case.params}
        ],
        "gate": {"primary_metric": case.primary_metric},
        "validation": {"suite": case.name, "policy": "fail"},
        "registered_model_name": case.name,
    }
    config = write_config(root / f"{case.name}.yaml", raw)
    init_suites(load_config(config), Settings(), pd.read_parquet(data))
    return config


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON records with nulls for the gaps and ISO strings for dates."""
    out = frame.astype(object).where(frame.notna(), None)
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            out[column] = [None if v is None else v.isoformat() for v in out[column]]
    return out.to_dict(orient="records")


def monitor(config: Path) -> Any:
    window = WindowSpec(hours=1)  # the shared log root of the environment, online rows
    return monitoring_flow(MonitoringParams(config_path=str(config), window=window))


def test_four_models_share_one_log_from_training_to_breach(
    settings: Settings, tmp_path: Path
) -> None:
    log_dir = settings.prediction_log_dir
    for case in CASES:
        config_path = write_case_config(case, tmp_path)
        config = load_config(config_path)
        trained = training_flow(TrainingParams(config_path=str(config_path)))
        assert trained.promoted, f"{case.name}: {trained.promotion_reason}"
        features = [c for c in case.make(5, 0, False).columns if c != case.target]

        served = case.make(SERVED_ROWS, 1, True)  # drifted on purpose
        labels = served.pop(case.target)
        assert served.isna().any().any()  # nulls reach the service in imputed features
        serve = ServeSettings(
            model_name=case.name, tracking_uri=settings.tracking_uri, poll_seconds=0
        )
        assert serve.log_dir == log_dir
        with TestClient(create_app(serve)) as client:
            answer = client.post("/predict", json={"records": records_of(served)})
            assert answer.status_code == 200, answer.text
            predictions = answer.json()["predictions"]
            assert len(predictions) == SERVED_ROWS
            if case.task == "classification":  # the training labels, strings included
                assert set(predictions) <= set(case.make(400, 0, False)[case.target])

            batch = case.make(BATCH_ROWS, 2, False).drop(columns=[case.target])
            batch.to_csv(tmp_path / f"{case.name}-batch.csv", index=False)
            scored = scoring_flow(
                ScoringParams(
                    config_path=str(config_path),
                    source=CsvSource(path=str(tmp_path / f"{case.name}-batch.csv")),
                    destination=CsvDestination(path=str(tmp_path / f"{case.name}-out.csv")),
                )
            )
            assert scored.rows == BATCH_ROWS
            client.app.state.log.flush()

            # Unlabelled: drift only, on this model's online rows alone
            window = log_frame(WindowSpec(hours=1), case.name, config, log_dir)
            assert len(window) == SERVED_ROWS
            expected = {*features, "prediction", case.target}
            if case.task == "classification":  # the logged class probabilities come along
                expected.add("prediction_probabilities")
            assert set(window.columns) == expected
            assert window[case.target].isna().all()
            logged = read_prediction_log(directory=log_dir)
            mine = logged.loc[logged["model_name"] == case.name]
            assert sorted(mine["source"].value_counts().items()) == [
                ("batch", BATCH_ROWS),
                ("online", SERVED_ROWS),
            ]
            blind = monitor(config_path)
            assert (blind.current_rows, blind.labeled_rows) == (SERVED_ROWS, 0)
            assert blind.drift is not None and blind.drift.quality is None
            assert DRIFT_DETECTED in blind.decision.events, case.name
            assert blind.decision.outcome == "alarm"
            assert len(blind.events) == len(blind.decision.events) > 0

            request_id = answer.json()["request_id"]
            for index, label in enumerate(labels.tolist()):
                sent = client.post(
                    "/feedback",
                    json={"request_id": request_id, "label": label, "row_index": index},
                )
                assert sent.status_code == 202, sent.text
            client.app.state.log.flush()

        seen = monitor(config_path)
        assert (seen.current_rows, seen.labeled_rows) == (SERVED_ROWS, SERVED_ROWS)
        assert seen.drift is not None and seen.drift.quality is not None, case.name
        assert seen.drift.quality.metric == case.primary_metric
        assert DRIFT_DETECTED in seen.decision.events
        assert len(seen.events) == len(seen.decision.events)

    logged = read_prediction_log(directory=log_dir)
    online = logged.loc[logged["source"] == "online"]
    assert online.groupby("model_name").size().to_dict() == dict.fromkeys(
        (c.name for c in CASES), SERVED_ROWS
    )
