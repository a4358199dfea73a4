"""Traffic between the champion and a version under rollout (prefect_mlops.rollout).

What a request sees is one immutable `Traffic`, swapped whole by the predictor: the champion, the
rollout state and the challenger loaded for it. `canary` and `ab` pick the answering arm per
request (`RolloutState.serving_arm`); `shadow` hands a copy of the request to
`serving.shadow.ShadowScorer`, which scores it in a worker process off the response path and never
blocks a request: a full queue drops the copy and counts it (`mlops_serve_shadow_dropped_total`).

The key that keeps a caller on one arm is the request's `X-Rollout-Key` header, else the value of
the state's `key` column of each row: a batch whose rows belong to both arms is split, each arm
scoring its rows, and its answer names each row's arm and version (`model_arms`,
`model_versions`; `x-model-arm: mixed`). Only when the two versions answer in different terms
(other classes, or in another order) does a batch follow its first row's key. Values are compared
as text (`42` and `"42"` are one caller). A request without a key is placed by its request id.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from prefect_mlops.rollout import Arm, RolloutState
from serving.engines import EngineOutput
from serving.metrics import ServiceMetrics
from serving.model import LoadedModel
from serving.schema import Columns

logger = logging.getLogger(__name__)


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
