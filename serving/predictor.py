"""The predictor service: holds the current model, predicts, logs, and follows the alias."""

from __future__ import annotations

import gc
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from mlflow.tracking import MlflowClient

from prefect_mlops.prediction_log import FeedbackRecord, PredictionRecord
from serving.errors import NotReadyError, UnknownModelError
from serving.log_writer import PredictionLog
from serving.metrics import ServiceMetrics
from serving.model import LoadedModel, load_version, resolve_alias
from serving.schema import Columns
from serving.settings import ServeSettings

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class Prediction:
    """The answer to one request, with the model that computed it."""

    request_id: str
    model: LoadedModel
    predictions: list[Any]
    probabilities: list[list[float]] | None


@dataclass(frozen=True)
class RefreshOutcome:
    """What a reload did."""

    version: str
    previous: str | None
    changed: bool


class Predictor:
    """Serves one registered model alias; the model reference is replaced atomically."""

    def __init__(
        self,
        settings: ServeSettings,
        client: MlflowClient,
        log: PredictionLog,
        metrics: ServiceMetrics,
    ) -> None:
        self.settings = settings
        self._client = client
        self._log = log
        self._metrics = metrics
        self._current: LoadedModel | None = None
        self._reason = "the model has not been loaded yet"
        self._reload_lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._current is not None

    @property
    def not_ready_reason(self) -> str | None:
        return None if self._current is not None else self._reason

    def model(self, name: str | None = None) -> LoadedModel:
        """The model to answer one request with (read once per request)."""
        current = self._current
        if current is None:
            raise NotReadyError(self._reason)
        if name is not None and name != current.name:
            raise UnknownModelError(
                f"model {name!r} is not served here; this serves {current.name!r}"
            )
        return current

    def predict(
        self, model: LoadedModel, columns: Columns, request_id: str | None = None
    ) -> Prediction:
        """Predict validated columns with `model` and queue them for the prediction log."""
        output = model.engine.predict(columns)
        rid = request_id if request_id and _REQUEST_ID.match(request_id) else uuid.uuid4().hex
        self._log.record(
            PredictionRecord(
                rid,
                time.time(),
                model.name,
                model.version,
                columns,
                output.predictions,
                output.probabilities,
            )
        )
        model.rows_scored.inc(len(output.predictions))
        probabilities = None if output.probabilities is None else output.probabilities.tolist()
        return Prediction(rid, model, output.predictions.tolist(), probabilities)

    def record_feedback(self, request_id: str, label: Any, row_index: int = 0) -> None:
        """Queue a ground-truth label for a logged prediction."""
        self._log.record(FeedbackRecord(request_id, row_index, label, time.time()))

    def refresh(self) -> RefreshOutcome:
        """Load the version the alias points at, if it is not the one served; then swap."""
        with self._reload_lock:
            previous = self._current.version if self._current else None
            try:
                version = resolve_alias(self._client, self.settings)
                if version == previous:
                    return RefreshOutcome(version, previous, changed=False)
                loaded = load_version(self._client, self.settings, version)
            except Exception as exc:
                self._metrics.reloads.labels("failed").inc()
                if self._current is None:
                    self._reason = f"cannot load {self.settings.model_uri}: {exc}"
                raise
            loaded.rows_scored = self._metrics.rows.labels(loaded.version)
            self._current = loaded  # one reference assignment: requests see old or new, whole
            self._metrics.reloads.labels("loaded").inc()
            self._metrics.model_loaded(loaded.name, loaded.version, loaded.engine.name)
            _freeze_heap()
            return RefreshOutcome(version, previous, changed=True)

    def try_refresh(self) -> RefreshOutcome | None:
        """`refresh`, logging instead of raising (for start-up and the poller)."""
        try:
            return self.refresh()
        except Exception:  # reported through readiness and metrics; the old model stays
            logger.exception("loading %s failed", self.settings.model_uri)
            return None


def _freeze_heap() -> None:
    """Exempt the long-lived heap (libraries, model) from garbage collection scans.

    Parsing a large request allocates enough objects to trigger full collections, and each
    would otherwise walk every object MLflow, pandas and scikit-learn created (tens of ms).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
