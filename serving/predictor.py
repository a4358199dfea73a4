"""The predictor service: holds the current model, predicts, logs, and follows the alias."""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import orjson
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from prefect_mlops.errors import RegistryError
from prefect_mlops.prediction_log import FeedbackRecord, PredictionRecord
from serving.errors import InputError, NotReadyError, UnknownModelError
from serving.log_writer import PredictionLog
from serving.metrics import ServiceMetrics
from serving.model import LoadedModel, load_version, resolve_alias
from serving.schema import Columns
from serving.settings import ServeSettings

logger = logging.getLogger(__name__)

LOADING_SWITCH_SECONDS = 0.0005
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_URL = re.compile(r"(?P<scheme>[A-Za-z][\w+.-]*://)(?:[^/@\s]*@)?(?P<rest>[^\s?#]*)(?:[?#]\S*)?")
# Error codes of an MlflowException that no registry sent: the call did not reach it (refused,
# timed out, DNS) or its store failed underneath it.
_NO_ANSWER = frozenset({"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "ENDPOINT_NOT_FOUND"})


@dataclass(frozen=True)
class Prediction:
    """The answer to one request, with the model that computed it."""

    request_id: str
    model: LoadedModel
    predictions: list[Any]
    probabilities: list[list[float]] | None


@dataclass(frozen=True)
class RegistryStatus:
    """Whether the registry answered the service's last look-up of the alias (apart from
    readiness: a loaded model keeps serving while the registry is down)."""

    uri: str
    reachable: bool | None = None  # None: not asked yet
    checked_at: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "reachable": self.reachable,
            "checked_at": self.checked_at,
            "error": self.error,
        }


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
        self._registry = RegistryStatus(public_uri(settings.registry_uri or settings.tracking_uri))
        self._answered: dict[str, int] = {}  # request id -> rows, oldest first, bounded
        self._answered_lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._current is not None

    @property
    def not_ready_reason(self) -> str | None:
        return None if self._current is not None else self._reason

    @property
    def registry(self) -> RegistryStatus:
        return self._registry

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
        self._remember(rid, len(output.predictions))
        model.rows_scored.inc(len(output.predictions))
        probabilities = None if output.probabilities is None else output.probabilities.tolist()
        return Prediction(rid, model, output.predictions.tolist(), probabilities)

    def record_feedback(self, request_id: str, label: Any, row_index: int = 0) -> None:
        """Queue a ground-truth label for a row this service answered; refused, naming the
        field, for an unknown request id, a row it did not have, or a label unfit for the task."""
        rows = self._rows_answered(request_id)
        if rows == 0:
            raise InputError("request_id", f"{request_id!r} is not a request this service logged")
        if row_index >= rows:
            raise InputError(
                "row_index", f"{row_index} is out of range: request {request_id!r} had {rows} rows"
            )
        model = self.model()
        check_label(model, label)
        self._log.record(FeedbackRecord(request_id, row_index, label, time.time(), model.name))

    def _remember(self, request_id: str, rows: int) -> None:
        with self._answered_lock:
            answered = self._answered
            answered[request_id] = max(rows, answered.pop(request_id, 0))
            if len(answered) > self.settings.feedback_known_requests:
                del answered[next(iter(answered))]

    def _rows_answered(self, request_id: str) -> int:
        """Rows of a request: recent ones from memory, older ones from the prediction log."""
        rows = self._answered.get(request_id)
        if rows is not None:
            return rows
        try:
            return self._log.store.logged_rows(request_id)
        except Exception as exc:  # translated: the label is not lost, the client may retry
            raise NotReadyError(f"cannot check request_id in the prediction log: {exc}") from exc

    def refresh(self) -> RefreshOutcome:
        """Load the version the alias points at, if it is not the one served; then swap."""
        with self._reload_lock:
            previous = self._current.version if self._current else None
            try:
                details = self._resolve_alias()
                version = str(details.version)
                if version == previous:
                    return RefreshOutcome(version, previous, changed=False)
                with _prompt_switching():
                    loaded = load_version(self._client, self.settings, version, details)
            except Exception as exc:
                self._metrics.reloads.labels("failed").inc()
                if self._current is None:
                    self._reason = f"cannot load {self.settings.model_uri}: {exc}"
                raise
            loaded.rows_scored = self._metrics.rows.labels(loaded.version)
            self._current = loaded  # one reference assignment: requests see old or new, whole
            self._metrics.reloads.labels("loaded").inc()
            self._metrics.model_loaded(loaded.name, loaded.version, loaded.engine.name)
            # Exempt the long-lived heap (libraries, model) from garbage collection scans:
            # parsing a large request allocates enough objects to trigger full collections,
            # each of which would otherwise walk everything MLflow, pandas and scikit-learn
            # made (tens of ms). Freezing is O(1); no gc.collect() here: a full collection
            # holds the GIL for hundreds of ms and stalled every request during a swap.
            gc.freeze()
            return RefreshOutcome(version, previous, changed=True)

    def _resolve_alias(self) -> ModelVersion:
        """The alias's version, noting whether the registry answered."""
        try:
            version = resolve_alias(self._client, self.settings)
        except Exception as exc:
            answered = isinstance(exc, RegistryError) or (
                isinstance(exc, MlflowException) and exc.error_code not in _NO_ANSWER
            )
            self._note_registry(answered, None if answered else _public_error(exc))
            raise
        self._note_registry(True, None)
        return version

    def _note_registry(self, reachable: bool, error: str | None) -> None:
        status = replace(self._registry, reachable=reachable, checked_at=time.time(), error=error)
        if reachable != self._registry.reachable:
            self._metrics.registry_reachable.set(int(reachable))
            if not reachable:
                logger.warning("the registry %s is unreachable: %s", status.uri, error)
        self._registry = status

    def try_refresh(self) -> RefreshOutcome | None:
        """`refresh`, logging instead of raising (for start-up and the poller)."""
        try:
            return self.refresh()
        except Exception as exc:  # reported through readiness and metrics; the old model stays
            # the error without credentials; the traceback (whose URLs may hold them) at debug
            logger.error("loading %s failed: %s", self.settings.model_uri, _public_error(exc))
            logger.debug("loading %s failed", self.settings.model_uri, exc_info=True)
            return None


def check_label(model: LoadedModel, label: Any) -> None:
    """A label fit for the model's task: one of its classes, or a finite number for a
    regressor (a model without classes predicting floats)."""
    if isinstance(label, list | dict) or label is None:
        raise InputError("label", f"expected one value, got {type(label).__name__}")
    if model.classes is not None:
        if not any(_same(label, c) for c in model.classes):
            raise InputError("label", f"{label!r} is not one of the classes {model.classes}")
    elif _predicts_floats(model):
        numeric = isinstance(label, int | float) and not isinstance(label, bool)
        if not numeric or not math.isfinite(label) or abs(label) >= 2**63:
            raise InputError("label", f"expected a finite number for a regressor, got {label!r}")


def _same(label: Any, known: Any) -> bool:
    """Equal and of the same kind: `True` is not the class 1, nor "1" the class 1."""
    return isinstance(label, bool) == isinstance(known, bool) and (
        label == known and isinstance(label, str) == isinstance(known, str)
    )


def _predicts_floats(model: LoadedModel) -> bool:
    """The signature's output is floating point (MLflow column or tensor spec)."""
    outputs = model.signature.get("outputs") or "[]"
    specs = orjson.loads(outputs) if isinstance(outputs, str) else outputs
    kinds = {
        s.get("type") if s.get("type") != "tensor" else s["tensor-spec"]["dtype"] for s in specs
    }
    return bool(kinds) and kinds <= {"double", "float", "float64", "float32"}


@contextlib.contextmanager
def _prompt_switching() -> Iterator[None]:
    """While a version loads on its thread, hand the GIL back to the event loop every 0.5 ms
    instead of Python's 5 ms, so requests wait less for the loader's pure-Python work."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, LOADING_SWITCH_SECONDS))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def public_uri(uri: str) -> str:
    """A store URI as it may be shown: no user, password or query (where tokens go)."""
    return _URL.sub(lambda m: m["scheme"] + m["rest"], uri)


def _public_error(exc: Exception) -> str:
    """The first line of an error, its URLs without credentials, bounded."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    text = public_uri(text)
    return text if len(text) <= 400 else f"{text[:240]} ... {text[-150:]}"  # keep the cause
