"""Rows a registered model scores: read chunk by chunk and predicted, every failure named.

The boundary between third-party errors (pandas' EmptyDataError, a KeyError for a column,
scikit-learn's ValueError on zero rows or a wrong type) and the project's `ScoringError`, which
names the input (file or table), the columns and the model version.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from prefect_mlops.errors import IngestError, ScoringError
from prefect_mlops.sources import Source


def model_label(name: str, version: str) -> str:
    """How errors name a model version, e.g. `bikeshare-demand v3`."""
    return f"{name} v{version}"


@contextmanager
def reading(where: str, model: str) -> Iterator[None]:
    """Translate a source's read errors into ScoringError naming the input and the model."""
    try:
        yield
    except ScoringError:
        raise
    except IngestError as exc:
        raise ScoringError(f"cannot score with {model}: {exc}") from exc


def scoring_chunks(source: Source, rows: int, model: str) -> Iterator[pd.DataFrame]:
    """The source's non-empty chunks; a source without a single row is refused, by name."""
    where, seen = source.describe(), False
    with reading(where, model):
        for chunk in source.iter_chunks(rows):
            if len(chunk):  # a header-only CSV yields one chunk without rows
                seen = True
                yield chunk
    if not seen:
        raise ScoringError(f"source {where} has no rows to score with {model}")


def require_features(frame: pd.DataFrame, features: list[str], where: str, model: str) -> None:
    """Refuse rows that lack a feature the model needs, naming every missing column."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ScoringError(
            f"{where} is missing column(s) {missing} that {model} needs "
            f"(it has {[str(c) for c in frame.columns]})"
        )


def predict_rows(
    estimator: Any, frame: pd.DataFrame, features: list[str], where: str, model: str
) -> np.ndarray:
    """The model's predictions of `frame[features]`, or ScoringError naming input and version."""
    require_features(frame, features, where, model)
    if frame.empty:
        raise ScoringError(f"{where} has no rows to score with {model}")
    try:
        return np.asarray(estimator.predict(frame[features]))
    except (KeyError, TypeError, ValueError) as exc:  # wrong types, unseen layouts, NaN rules
        raise ScoringError(
            f"{model} cannot score {where} (columns {features}): {type(exc).__name__}: {exc}"
        ) from exc
