"""The predictor service: holds the current model, predicts, logs, and follows the alias.

One registry read per poll (`get_registered_model`: aliases and tags together) gives the
champion's version and the rollout state (prefect_mlops.rollout); the version under rollout is
loaded beside the champion while a rollout is on (serving.traffic routes between them) and
dropped when it ends. A rollout applies to a service following `champion` only.
"""

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
from mlflow.entities.model_registry import RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from prefect_mlops.errors import RegistryError
from prefect_mlops.prediction_log import FeedbackRecord, PredictionRecord
from prefect_mlops.registry import CHAMPION
from prefect_mlops.rollout import ROLLOUT_ALIAS, Arm, RolloutState, parse_rollout
from serving.errors import InputError, NotReadyError, UnknownModelError
from serving.log_writer import PredictionLog
from serving.metrics import ServiceMetrics
from serving.model import LoadedModel, load_version
from serving.schema import Columns
from serving.settings import ServeSettings
from serving.shadow import ShadowJob, ShadowScorer
from serving.traffic import ArmMeters, Traffic, challenger_columns, timed_predict

logger = logging.getLogger(__name__)

# While a version loads: the interpreter's switch interval (Python's default is 5 ms). Measured
# with bench/serving --swaps-only (3 runs of 3 interleaved rounds, idle machine): p99 during swaps
# 1.68-1.78x the p99 without at 0.1 ms, 1.81-2.07x at 0.5 ms.
LOADING_SWITCH_SECONDS = 0.0001
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
    arm: Arm = "champion"
    # A batch split between the arms (A/B or canary by a key column): each row's arm and version.
    row_arms: list[Arm] | None = None
    row_versions: list[str] | None = None

    @property
    def arm_label(self) -> str:
        """The arm that answered, `mixed` for a batch split between the arms."""
        return "mixed" if self.row_arms is not None else self.arm

    @property
    def version_label(self) -> str:
        """The version that answered; for a split batch its versions in row order, joined by
        commas."""
        if self.row_versions is None:
            return self.model.version
        return ",".join(dict.fromkeys(self.row_versions))


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
        self._traffic: Traffic | None = None
        self._shadow = ShadowScorer(settings, metrics, settings.shadow_queue_size)
        self._reason = "the model has not been loaded yet"
        self._reload_lock = threading.Lock()
        self._registry = RegistryStatus(public_uri(settings.registry_uri or settings.tracking_uri))
        self._answered: dict[str, int] = {}  # request id -> rows, oldest first, bounded
        self._answered_lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._traffic is not None

    @property
    def not_ready_reason(self) -> str | None:
        return None if self._traffic is not None else self._reason

    @property
    def registry(self) -> RegistryStatus:
        return self._registry

    def start(self) -> None:
        """Start the shadow scorer's thread."""
        self._shadow.start()

    def close(self) -> None:
        """Score the queued shadow copies (so they reach the log), then stop."""
        self._shadow.close()

    def drain_shadow(self, timeout: float = 10.0) -> None:
        """Wait until the queued shadow copies are scored and logged."""
        self._shadow.drain(timeout)

    def traffic(self, name: str | None = None) -> Traffic:
        """The models to answer one request with (read once per request)."""
        traffic = self._traffic
        if traffic is None:
            raise NotReadyError(self._reason)
        served = traffic.champion.name
        if name is not None and name != served:
            raise UnknownModelError(f"model {name!r} is not served here; this serves {served!r}")
        return traffic

    def model(self, name: str | None = None) -> LoadedModel:
        """The champion (what metadata, labels and validation go by)."""
        return self.traffic(name).champion

    def rollout_view(self) -> tuple[dict[str, Any] | None, str | None]:
        """The rollout being served (None when none is) and why a rollout is not served."""
        traffic = self._traffic
        if traffic is None:
            return None, None
        view = traffic.view()
        if view is not None and traffic.shadowing:
            view["shadow_worker"] = self._shadow.status()
        return view, traffic.rollout_error

    def predict(
        self,
        traffic: Traffic,
        columns: Columns,
        request_id: str | None = None,
        rollout_key: str | None = None,
    ) -> Prediction:
        """Predict champion-validated columns with the arm the rollout picks (the champion when
        a challenger fails: its error is counted, the client never sees it) and queue the answer
        for the prediction log; in shadow mode a copy goes to the challenger off this path."""
        rid = request_id if request_id and _REQUEST_ID.match(request_id) else uuid.uuid4().hex
        model, output = traffic.champion, None
        arm: Arm = "champion"
        picked = traffic.arm_for(columns, rid, rollout_key) if traffic.splitting else arm
        if isinstance(picked, list):
            return self._predict_split(traffic, columns, rid, picked)
        if picked == "challenger":
            output = self._challenger_answer(traffic, columns)
            if output is not None:
                assert traffic.challenger is not None
                model, arm, columns = traffic.challenger, "challenger", output[1]
        answer = (
            timed_predict(model, traffic.champion_meters, columns) if output is None else output[0]
        )
        now = time.time()
        self._log.record(
            PredictionRecord(
                rid,
                now,
                model.name,
                model.version,
                columns,
                answer.predictions,
                answer.probabilities,
                arm=arm,
            )
        )
        rows = len(answer.predictions)
        self._remember(rid, rows)
        model.rows_scored.inc(rows)
        if traffic.shadowing:
            self._shadow.submit(ShadowJob(traffic, columns, rid, now, rows))
        probabilities = None if answer.probabilities is None else answer.probabilities.tolist()
        return Prediction(rid, model, answer.predictions.tolist(), probabilities, arm)

    def _predict_split(
        self, traffic: Traffic, columns: Columns, rid: str, arms: list[Arm]
    ) -> Prediction:
        """A batch whose rows' keys belong to both arms: each arm scores its own rows (the
        champion all of them when the challenger fails), and each run of neighbouring rows of
        one arm is logged with its arm, version and row indexes."""
        champion, challenger = traffic.champion, traffic.challenger
        assert challenger is not None
        rows = {a: [i for i, b in enumerate(arms) if b == a] for a in ("champion", "challenger")}
        picked = rows["challenger"]
        output = self._challenger_answer(
            traffic, {n: [v[i] for i in picked] for n, v in columns.items()}
        )
        if output is None:  # refused or failed (counted): the champion answers the whole batch
            return self.predict(replace(traffic, rollout=None), columns, rid)
        kept = rows["champion"]
        parts = {
            "champion": (
                champion,
                {n: [v[i] for i in kept] for n, v in columns.items()},
            ),
            "challenger": (challenger, output[1]),
        }
        answers = {
            "champion": timed_predict(champion, traffic.champion_meters, parts["champion"][1]),
            "challenger": output[0],
        }
        now, size = time.time(), len(arms)
        predictions: list[Any] = [None] * size
        probabilities: list[Any] | None = None
        for arm, indexes in rows.items():
            model, part = parts[arm]
            answer = answers[arm]
            for index, value in zip(indexes, answer.predictions.tolist(), strict=True):
                predictions[index] = value
            if answer.probabilities is not None:
                probabilities = probabilities or [None] * size
                for index, value in zip(indexes, answer.probabilities.tolist(), strict=True):
                    probabilities[index] = value
            model.rows_scored.inc(len(indexes))
            for start, end, first in _runs(indexes):  # rows start..end-1, part rows first..
                stop = first + end - start
                self._log.record(
                    PredictionRecord(
                        rid,
                        now,
                        model.name,
                        model.version,
                        {n: values[first:stop] for n, values in part.items()},
                        answer.predictions[first:stop],
                        None if answer.probabilities is None else answer.probabilities[first:stop],
                        row_offset=start,
                        arm=arm,
                    )
                )
        self._remember(rid, size)
        versions = [champion.version if a == "champion" else challenger.version for a in arms]
        return Prediction(rid, champion, predictions, probabilities, "champion", arms, versions)

    def _challenger_answer(self, traffic: Traffic, columns: Columns) -> tuple[Any, Columns] | None:
        """The challenger's output and the columns it scored, or None when it raised."""
        assert traffic.challenger is not None and traffic.challenger_meters is not None
        try:
            taken = challenger_columns(traffic, columns)
        except Exception:  # its signature refuses the request: the champion answers instead
            traffic.challenger_meters.error.inc()
            logger.debug("challenger v%s refused a request", traffic.challenger.version)
            return None
        try:
            return timed_predict(traffic.challenger, traffic.challenger_meters, taken), taken
        except Exception:  # counted by timed_predict; the champion answers instead
            logger.debug("challenger v%s failed", traffic.challenger.version, exc_info=True)
            return None

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
        """Read the registered model once (aliases and tags); load the champion's version if it
        is not the one served, and the rollout's challenger if one is on; then swap, whole."""
        with self._reload_lock:
            current = self._traffic
            previous = current.champion.version if current else None
            try:
                registered = self._read_registry()
                version = self._champion_version(registered)
                champion = (
                    current.champion
                    if current is not None and version == previous
                    else self._load(version)
                )
            except Exception as exc:
                self._metrics.reloads.labels("failed").inc()
                if current is None:
                    self._reason = f"cannot load {self.settings.model_uri}: {exc}"
                raise
            traffic = self._traffic_for(registered, champion, current)
            if current is None or traffic != current:
                self._swap(traffic, current)
            return RefreshOutcome(version, previous, changed=version != previous)

    def _read_registry(self) -> RegisteredModel:
        """The registered model (aliases and tags in one call), noting whether the registry
        answered."""
        name = self.settings.model_name
        try:
            registered = self._client.get_registered_model(name)
        except Exception as exc:
            answered = isinstance(exc, RegistryError) or (
                isinstance(exc, MlflowException) and exc.error_code not in _NO_ANSWER
            )
            self._note_registry(answered, None if answered else _public_error(exc))
            if isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise RegistryError(f"registered model {name!r} does not exist") from exc
            raise
        self._note_registry(True, None)
        return registered

    def _champion_version(self, registered: RegisteredModel) -> str:
        version = (registered.aliases or {}).get(self.settings.alias)
        if version is None:
            raise RegistryError(
                f"registered model {self.settings.model_name!r} has no alias "
                f"{self.settings.alias!r}"
            )
        return str(version)

    def _load(self, version: str, alias: str | None = None) -> LoadedModel:
        with _prompt_switching():
            loaded = load_version(self._client, self.settings, version)
        if alias is not None:
            loaded = replace(loaded, alias=alias)
        loaded.rows_scored = self._metrics.rows.labels(loaded.version)
        return loaded

    def _traffic_for(
        self, registered: RegisteredModel, champion: LoadedModel, current: Traffic | None
    ) -> Traffic:
        """The traffic the registry asks for; a rollout that cannot be served (its tag does not
        parse, its version does not load) leaves every request to the champion, saying why."""
        same_champion = current is not None and current.champion is champion
        meters = (
            current.champion_meters
            if current is not None and same_champion
            else ArmMeters.bind(self._metrics, "champion", champion.version)
        )
        plain = Traffic(champion, meters)
        if self.settings.alias != CHAMPION:
            return plain
        try:
            rollout = parse_rollout(dict(registered.tags or {}))
        except RegistryError as exc:
            logger.error("not serving a rollout of %s: %s", self.settings.model_name, exc)
            return replace(plain, rollout_error=str(exc))
        if rollout is None:
            return plain
        if rollout.version == champion.version:  # e.g. promoted, tag not yet cleared
            return replace(plain, rollout=rollout)
        return self._with_challenger(replace(plain, rollout=rollout), rollout, current)

    def _with_challenger(
        self, traffic: Traffic, rollout: RolloutState, current: Traffic | None
    ) -> Traffic:
        loaded = current.challenger if current is not None else None
        if loaded is None or loaded.version != rollout.version:
            try:
                loaded = self._load(rollout.version, alias=ROLLOUT_ALIAS)
            except Exception as exc:  # reported through /health and /metadata; champion serves
                self._metrics.reloads.labels("failed").inc()
                problem = f"cannot load the rollout's version {rollout.version}: " + _public_error(
                    exc
                )
                logger.error("%s of %s", problem, self.settings.model_name)
                return replace(traffic, rollout_error=problem)
            self._metrics.reloads.labels("loaded").inc()
        arm: Arm = "shadow" if rollout.mode == "shadow" else "challenger"
        same = (
            current is not None
            and current.challenger is loaded
            and current.challenger_meters is not None
            and current.rollout is not None
            and (current.rollout.mode == "shadow") == (arm == "shadow")
        )
        meters = (
            current.challenger_meters
            if same and current is not None
            else ArmMeters.bind(self._metrics, arm, loaded.version)
        )
        fits = loaded.schema.columns == traffic.champion.schema.columns
        return replace(traffic, challenger=loaded, challenger_meters=meters, challenger_fits=fits)

    def _swap(self, traffic: Traffic, previous: Traffic | None) -> None:
        self._traffic = traffic  # one reference assignment: requests see old or new, whole
        challenger = traffic.challenger
        self._shadow.prepare(challenger.version if traffic.shadowing and challenger else None)
        champion = traffic.champion
        if previous is None or previous.champion is not champion:
            self._metrics.reloads.labels("loaded").inc()
            self._metrics.model_loaded(champion.name, champion.version, champion.engine.name)
        rollout = traffic.rollout
        self._metrics.rollout_served(
            rollout.mode if rollout and traffic.challenger else None,
            champion.version,
            traffic.challenger.version if traffic.challenger else None,
            rollout.share if rollout else 0.0,
        )
        if previous is not None and previous.challenger is not None and not traffic.challenger:
            logger.info("rollout of %s ended: every request to the champion", champion.name)
        # Exempt the long-lived heap (libraries, model) from garbage collection scans:
        # parsing a large request allocates enough objects to trigger full collections,
        # each of which would otherwise walk everything MLflow, pandas and scikit-learn
        # made (tens of ms). Freezing is O(1); no gc.collect() here: a full collection
        # holds the GIL for hundreds of ms and stalled every request during a swap.
        gc.freeze()

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
    """While a version loads on its thread, hand the GIL back to the event loop every 0.1 ms
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


def _runs(indexes: list[int]) -> Iterator[tuple[int, int, int]]:
    """Runs of consecutive row indexes: (first row, row after the last, position in `indexes`)."""
    position = 0
    while position < len(indexes):
        start = end = indexes[position]
        first = position
        while position < len(indexes) and indexes[position] == end:
            end += 1
            position += 1
        yield start, end, first
