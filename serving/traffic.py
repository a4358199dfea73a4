"""Traffic between the champion and a version under rollout (prefect_mlops.rollout).

What a request sees is one immutable `Traffic`, swapped whole by the predictor: the champion, the
rollout state and the challenger loaded for it. `canary` and `ab` pick the answering arm per
request (`RolloutState.serving_arm`); `shadow` hands a copy of the request to `ShadowScorer`, a
thread off the response path that never blocks a request: a full queue drops the copy and counts
it (`mlops_serve_shadow_dropped_total`).

The key that keeps a caller on one arm is the request's `X-Rollout-Key` header, else the value of
the state's `key` column of each row: a batch whose rows belong to both arms is split, each arm
scoring its rows, and its answer names each row's arm and version (`model_arms`,
`model_versions`; `x-model-arm: mixed`). Only when the two versions answer in different terms
(other classes, or in another order) does a batch follow its first row's key. Values are compared
as text (`42` and `"42"` are one caller). A request without a key is placed by its request id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from prefect_mlops.prediction_log import PredictionRecord
from prefect_mlops.rollout import Arm, RolloutState
from serving.engines import EngineOutput
from serving.log_writer import PredictionLog
from serving.metrics import ServiceMetrics
from serving.model import LoadedModel
from serving.schema import Columns

logger = logging.getLogger(__name__)

SHADOW_BATCH_JOBS = 256  # requests scored by the shadow in one engine call, at most
# The worker rests this long after each batch (sleeping, so without the GIL): copies gather into
# fewer, larger engine calls instead of the worker taking the GIL back for every request.
SHADOW_BATCH_SECONDS = 0.01
SHADOW_IDLE_SECONDS = 0.2  # the longest a queued copy waits for an idle worker to notice it


@dataclass(frozen=True)
class ArmMeters:
    """One arm's metrics, bound to its labels once (no label look-up per request)."""

    ok: Any
    error: Any
    seconds: Any

    @classmethod
    def bind(cls, metrics: ServiceMetrics, arm: Arm, version: str) -> ArmMeters:
        requests = metrics.arm_requests
        return cls(
            requests.labels(arm, version, "ok"),
            requests.labels(arm, version, "error"),
            metrics.arm_seconds.labels(arm, version),
        )


@dataclass(frozen=True)
class Traffic:
    """The models one request may be answered or shadowed by, read once per request."""

    champion: LoadedModel
    champion_meters: ArmMeters
    rollout: RolloutState | None = None
    challenger: LoadedModel | None = None
    # labelled `shadow` in shadow mode, `challenger` in canary and A/B
    challenger_meters: ArmMeters | None = None
    # the challenger takes the champion's validated columns as they are (same signature)
    challenger_fits: bool = True
    rollout_error: str | None = None

    @property
    def shadowing(self) -> bool:
        return (
            self.challenger is not None
            and self.rollout is not None
            and (self.rollout.mode == "shadow")
        )

    @property
    def splitting(self) -> bool:
        return (
            self.challenger is not None
            and self.rollout is not None
            and (self.rollout.mode != "shadow")
        )

    @property
    def rows_may_split(self) -> bool:
        """A batch's rows may be answered by both arms: their answers mean the same (the same
        classes in the same order, or both regressors)."""
        challenger = self.challenger
        return challenger is not None and challenger.classes == self.champion.classes

    def arm_for(self, columns: Columns, request_id: str, header_key: str | None) -> Arm | list[Arm]:
        """The arm answering this request (`champion` unless a canary or A/B split says so), or
        one arm per row when the rows' keys put a batch on both arms."""
        rollout = self.rollout
        if rollout is None or not self.splitting:
            return "champion"
        if header_key is not None or not rollout.key:
            return rollout.serving_arm(header_key, request_id)
        values = columns.get(rollout.key) or [None]
        if len(values) == 1 or not self.rows_may_split:
            first = values[0]
            return rollout.serving_arm(None if first is None else str(first), request_id)
        by_key: dict[str | None, Arm] = {}
        arms = [
            by_key.get(key) or by_key.setdefault(key, rollout.serving_arm(key, request_id))
            for key in (None if v is None else str(v) for v in values)
        ]
        return arms[0] if len(set(by_key.values())) == 1 else arms

    def view(self) -> dict[str, Any] | None:
        """The rollout as `/metadata` and `/health` show it, or None when there is none."""
        rollout = self.rollout
        if rollout is None:
            return None
        challenger = self.challenger
        return {
            "mode": rollout.mode,
            "share": rollout.share,
            "key": rollout.key,
            "step": rollout.step,
            "flow_run_id": rollout.flow_run_id,
            "updated_at": rollout.updated_at,
            "champion_version": self.champion.version,
            "challenger_version": rollout.version,
            "challenger_loaded": challenger is not None,
            "challenger_engine": None if challenger is None else challenger.engine.name,
        }


def challenger_columns(traffic: Traffic, columns: Columns) -> Columns:
    """The champion-validated columns as the challenger takes them (checked again by its own
    signature when the two differ; an InputError then counts as the challenger's error)."""
    challenger = traffic.challenger
    assert challenger is not None
    if traffic.challenger_fits:
        return columns
    schema = challenger.schema
    return schema.validate_columns({n: columns[n] for n in schema.names if n in columns})


def timed_predict(model: LoadedModel, meters: ArmMeters, columns: Columns) -> EngineOutput:
    """Score with `model`, counting the outcome and the scoring time under its arm."""
    started = time.perf_counter()
    try:
        output = model.engine.predict(columns)
    except Exception:
        meters.error.inc()
        raise
    meters.seconds.observe(time.perf_counter() - started)
    meters.ok.inc()
    return output


@dataclass(frozen=True)
class ShadowJob:
    """A copy of one answered request for the challenger."""

    traffic: Traffic
    columns: Columns
    request_id: str
    timestamp: float
    rows: int = field(default=1)


class ShadowScorer:
    """Scores shadow copies on a thread of its own, in batches, and logs them as `shadow` rows.

    `submit` only appends to a bounded deque (never blocks, never raises); the worker drains up
    to `SHADOW_BATCH_JOBS` copies at a time, at most every `SHADOW_BATCH_SECONDS`, and scores
    them in one engine call, so under load a copy costs the challenger a fraction of one call
    and the requests' thread waits for the GIL less often. A batch whose call raises is scored
    copy by copy, so one bad request counts one error.
    """

    def __init__(self, log: PredictionLog, metrics: ServiceMetrics, capacity: int) -> None:
        self._log = log
        self._metrics = metrics
        self._capacity = capacity
        self._jobs: deque[ShadowJob] = deque()
        self._wake = threading.Event()
        self._idle = True
        self._closing = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)
        self._thread.start()

    def submit(self, job: ShadowJob) -> None:
        """Queue a copy; a full queue (or a stopped worker) drops it and counts it."""
        if len(self._jobs) >= self._capacity or self._thread is None:
            self._metrics.shadow_dropped.inc()
            return
        self._jobs.append(job)
        if self._idle:
            self._idle = False
            self._wake.set()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued copy has been scored (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._jobs or not self._idle) and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.005)

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, then stop the worker."""
        if self._thread is None:
            return
        self.drain(timeout)
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        jobs = self._jobs
        while not self._closing:
            if not jobs:
                self._idle = True
                self._wake.wait(SHADOW_IDLE_SECONDS)
                self._wake.clear()
                continue
            started = time.monotonic()
            batch = [jobs.popleft() for _ in range(min(len(jobs), SHADOW_BATCH_JOBS))]
            try:
                self._score(batch)
            except Exception:  # the shadow never takes the service down; counted per copy
                logger.exception("shadow scoring failed")
            rest = SHADOW_BATCH_SECONDS - (time.monotonic() - started)
            if rest > 0 and not self._closing:
                time.sleep(rest)

    def _score(self, batch: list[ShadowJob]) -> None:
        groups: dict[int, list[ShadowJob]] = {}
        for job in batch:  # one group per Traffic: a swap mid-batch changes the challenger
            groups.setdefault(id(job.traffic), []).append(job)
        for group in groups.values():
            traffic = group[0].traffic
            if len(group) > 1:
                try:
                    self._score_together(traffic, group)
                    continue
                except Exception:  # isolate the copy that raised: each scored alone below
                    logger.debug("shadow batch failed; scoring its copies one by one")
            for job in group:
                try:
                    self._score_together(traffic, [job], count_error=True)
                except Exception:  # counted as the shadow's error; the other copies go on
                    continue

    def _score_together(
        self, traffic: Traffic, group: list[ShadowJob], count_error: bool = False
    ) -> None:
        challenger, meters = traffic.challenger, traffic.challenger_meters
        assert challenger is not None and meters is not None
        started = time.perf_counter()
        try:
            parts = [challenger_columns(traffic, job.columns) for job in group]
            names = list(parts[0])
            columns = (
                parts[0]
                if len(parts) == 1
                else {n: list(chain.from_iterable(p[n] for p in parts)) for n in names}
            )
            output = challenger.engine.predict(columns)
        except Exception:
            if count_error:
                meters.error.inc()
                logger.debug("shadow copy %s failed", group[0].request_id, exc_info=True)
            raise
        elapsed = time.perf_counter() - started
        offset = 0
        for job, part in zip(group, parts, strict=True):
            rows = len(next(iter(part.values()))) if part else job.rows
            end = offset + rows
            probabilities = output.probabilities
            self._log.record(
                PredictionRecord(
                    job.request_id,
                    job.timestamp,
                    challenger.name,
                    challenger.version,
                    part,
                    output.predictions[offset:end],
                    None if probabilities is None else probabilities[offset:end],
                    source="shadow",
                    arm="shadow",
                )
            )
            offset = end
            meters.seconds.observe(elapsed)  # each copy waited for the whole call
            meters.ok.inc()
        challenger.rows_scored.inc(offset)
