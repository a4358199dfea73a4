"""Feature schema inference, training-data checks and the preprocessing builder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from prefect_mlops.config import PipelineConfig, parse_config
from prefect_mlops.errors import DataQualityError
from prefect_mlops.estimators import build_model
from prefect_mlops.evaluation import holdout_metrics, predict, slice_metrics
from prefect_mlops.features import (
    build_preprocessor,
    check_training_frame,
    infer_schema,
    nullable_features,
    with_missing,
)
from prefect_mlops.results import CandidateSpec, FeatureSchema
from prefect_mlops.transformers import CategoryText, DatetimeParts
from tests.conftest import fast_config_dict


def classification_config(**overrides: object) -> PipelineConfig:
    raw = fast_config_dict(
        task="classification",
        target="label",
        split={"strategy": "stratified", "test_size": 0.25},
        gate={"primary_metric": "f1"},
        categorical_features=[],
        exclude=[],
        slices=[],
        candidates=[{"name": "lr", "estimator": "logistic_regression"}],
    )
    raw.update(overrides)
    return parse_config(raw)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "cat": rng.choice(["a", "b", "c"], size=n),
            "when": pd.date_range("2024-01-01", periods=n, freq="h").astype(str),
            "label": rng.choice(["yes", "no"], size=n),
        }
    )


def test_schema_infers_kinds(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, classification_config(datetime_features=["when"]))
    assert schema.numeric == ["num"]
    assert schema.categorical == ["cat"]
    assert schema.datetime == ["when"]


def test_excluded_and_target_columns_are_not_features(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, classification_config(exclude=["when"]))
    assert schema.features == ["num", "cat"]


def test_absent_target_is_named(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, classification_config())
    with pytest.raises(DataQualityError, match="target column 'label' is absent"):
        check_training_frame(frame.drop(columns="label"), schema)


def test_single_class_target_is_rejected(frame: pd.DataFrame) -> None:
    one_class = frame.assign(label="yes")
    schema = infer_schema(one_class, classification_config())
    with pytest.raises(DataQualityError, match="single class"):
        check_training_frame(one_class, schema)


def test_all_null_feature_is_named(frame: pd.DataFrame) -> None:
    broken = frame.assign(num=np.nan)
    schema = infer_schema(broken, classification_config())
    with pytest.raises(DataQualityError, match=r"\['num'\] are entirely null"):
        check_training_frame(broken, schema)


def test_text_regression_target_is_rejected(frame: pd.DataFrame) -> None:
    schema = FeatureSchema(target="label", task="regression", numeric=["num"])
    with pytest.raises(DataQualityError, match="not numeric"):
        check_training_frame(frame, schema)


def test_numeric_feature_with_text_dtype_is_named(frame: pd.DataFrame) -> None:
    schema = FeatureSchema(target="label", task="classification", numeric=["num", "cat"])
    with pytest.raises(DataQualityError, match="numeric feature 'cat' has dtype"):
        check_training_frame(frame, schema)


def test_preprocessor_uses_the_projects_transformers(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, classification_config(datetime_features=["when"]))
    preprocessor = build_preprocessor(schema)
    branches = {name: branch for name, branch, _ in preprocessor.transformers}
    assert isinstance(branches["categorical"][0], CategoryText)
    assert isinstance(branches["datetime"][0], DatetimeParts)


def test_preprocessor_names_every_output_column(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, classification_config(datetime_features=["when"]))
    preprocessor = build_preprocessor(schema).fit(frame[schema.features])
    names = preprocessor.get_feature_names_out().tolist()
    assert names == [
        "num",
        "cat_a",
        "cat_b",
        "cat_c",
        *(f"when_{p}" for p in DatetimeParts().parts),
    ]
    assert preprocessor.transform(frame[schema.features]).shape == (len(frame), len(names))


def test_preprocessor_scores_unseen_categories_and_unparseable_dates(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, classification_config(datetime_features=["when"]))
    model = Pipeline([("pre", build_preprocessor(schema)), ("lr", LogisticRegression())])
    model.fit(frame[schema.features], frame["label"])
    odd = frame.head(3).assign(cat=["never-seen", None, "a"], when=["not a date", None, "x"])
    assert np.isfinite(model.predict_proba(odd[schema.features])).all()


def test_unseen_category_and_missing_values_still_score(frame: pd.DataFrame) -> None:
    config = classification_config(datetime_features=["when"])
    schema = infer_schema(frame, config)
    spec = CandidateSpec(name="lr", estimator="logistic_regression", params={}, index=0)
    model = build_model(spec, schema, seed=0).fit(frame[schema.features], frame["label"])
    unseen = frame.head(10).assign(cat="never-seen")
    unseen.loc[0, "num"] = np.nan
    metrics = holdout_metrics(model, unseen, schema)
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert np.isfinite(metrics["log_loss"])


def test_slice_metrics_equal_metrics_of_each_slice(frame: pd.DataFrame) -> None:
    config = classification_config()
    schema = infer_schema(frame, config)
    spec = CandidateSpec(name="lr", estimator="logistic_regression", params={}, index=0)
    model = build_model(spec, schema, seed=0).fit(frame[schema.features], frame["label"])
    slices = slice_metrics(frame, predict(model, frame, schema), schema, ["cat"])
    for value, metrics in slices["cat"].items():
        part = frame[frame["cat"] == value]
        assert metrics["rows"] == len(part)
        assert metrics["accuracy"] == pytest.approx(
            holdout_metrics(model, part, schema)["accuracy"]
        )


def _numbers(n: int = 40) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    X = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "count": rng.integers(0, 9, n),
            "flag": rng.choice([True, False], n),
            "at": pd.date_range("2024-01-01", periods=n, freq="h"),
        }
    )
    return X, X["x"].to_numpy() * 2 + X["count"].to_numpy()


def test_every_feature_the_preprocessor_imputes_is_nullable(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, classification_config(datetime_features=["when"]))
    spec = CandidateSpec(name="lr", estimator="logistic_regression", params={}, index=0)
    X = frame[schema.features]
    model = build_model(spec, schema, 0).fit(X, frame["label"])
    assert nullable_features(model, X) == ["num", "cat", "when"]


def test_features_a_step_refuses_nan_for_are_not_nullable() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    X, y = _numbers()
    columns = ColumnTransformer([("scaled", StandardScaler(), ["x", "count"])], remainder="drop")
    linear = Pipeline([("pre", columns), ("ridge", Ridge())]).fit(X, y)
    # unused columns take anything; the scaled ones reach Ridge as NaN
    assert nullable_features(linear, X) == ["flag", "at"]
    native = Pipeline([("pre", columns), ("hgb", HistGradientBoostingRegressor(max_iter=5))])
    assert nullable_features(native.fit(X, y), X) == ["x", "count", "flag", "at"]


def test_with_missing_types_each_null_as_a_request_reaches_the_model() -> None:
    X, _ = _numbers(3)
    out = with_missing(X, list(X.columns))
    assert str(out["count"].dtype) == "Int64" and out["count"].isna().all()
    assert out["x"].isna().all() and out["at"].isna().all()
    assert out["flag"].tolist() == [None, None, None]
    assert X.notna().all().all()  # the input is not changed
