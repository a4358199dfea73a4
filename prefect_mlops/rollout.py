"""Progressive delivery state: which version shares traffic with the champion, how, and how much.

The state lives in the registry, so every replica agrees and a restart keeps it: one JSON tag on
the registered model (`mlops.rollout`, written in one call, so no replica reads half a change) and
the alias `rollout` on the version under rollout (visible in the MLflow UI). No tag: all traffic
goes to the champion. The champion alias is never touched here; promotion moves it (registry.py).

Arms: `champion` answers; `challenger` answers instead of the champion (canary and A/B);
`shadow` scores a copy of the request off the response path and is never returned.
Assignment is a pure function of the request key's value, the model name and the rollout version
(SHA-256, not Python's salted hash), so it is identical across processes, hosts and restarts.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Literal

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prefect_mlops.errors import RegistryError

ROLLOUT_TAG = "mlops.rollout"
ROLLOUT_ALIAS = "rollout"
# The registration event's resource label naming the deployment that rolls the version out:
# each rollout trigger matches its own deployment's name there, so one event starts one rollout
# (a model with its own rollout-<model> is not also rolled out by prefect.yaml's catch-all).
ROLLOUT_DEPLOYMENT_LABEL = "mlops.rollout.deployment"
CATCH_ALL_ROLLOUT = "rollout/rollout"


def model_rollout_deployment(name: str) -> str:
    """The deployment `mlops deploy --config` makes to roll out one model's challengers, e.g.
    `rollout/rollout-bikeshare-demand`."""
    return f"{CATCH_ALL_ROLLOUT}-{name}"


RolloutMode = Literal["shadow", "canary", "ab"]
Arm = Literal["champion", "challenger", "shadow"]
ARMS: tuple[Arm, ...] = ("champion", "challenger", "shadow")


class RolloutState(BaseModel):
    """One model's traffic split, as the registry holds it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(description="the version under rollout (the challenger)")
    mode: RolloutMode
    share: float = Field(default=0.0, ge=0.0, le=1.0, description="challenger's traffic share")
    key: str | None = Field(
        default=None, description="request field whose value keeps a caller on one arm"
    )
    step: str = Field(default="", description="the rollout step that set this state")
    flow_run_id: str | None = None
    updated_at: float = Field(default_factory=time.time)

    @model_validator(mode="after")
    def _consistent(self) -> RolloutState:
        if self.mode == "shadow" and self.share != 0.0:
            raise ValueError("a shadow rollout answers no request: share must be 0")
        if self.mode == "ab" and not self.key:
            raise ValueError("an A/B rollout needs a request key to keep callers on one arm")
        return self

    def serving_arm(self, key_value: object | None, request_id: str) -> Arm:
        """Which arm answers this request: `challenger` for the share of callers the hash puts
        below `share`, else `champion` (shadow mode always answers with the champion)."""
        if self.mode == "shadow" or self.share <= 0.0:
            return "champion"
        if self.share >= 1.0:
            return "challenger"
        basis = request_id if key_value is None else f"key:{key_value}"
        return "challenger" if bucket(basis, self.version) < self.share else "champion"


def bucket(value: str, salt: str) -> float:
    """A stable number in [0, 1) for `value` (the same on every host, process and restart)."""
    digest = hashlib.sha256(f"{salt}\x00{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def parse_rollout(tags: dict[str, str]) -> RolloutState | None:
    """The state held in a registered model's tags, or None when no rollout is on.

    A tag that does not parse is an error naming the tag, never silently ignored."""
    raw = tags.get(ROLLOUT_TAG)
    if not raw:
        return None
    try:
        return RolloutState.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        problem = f"registered model tag {ROLLOUT_TAG!r} is not a rollout: {exc}"
        raise RegistryError(problem) from exc


def read_rollout(client: MlflowClient, name: str) -> RolloutState | None:
    """The rollout on `name` now (one registry call), or None."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return parse_rollout(dict(model.tags or {}))


def write_rollout(client: MlflowClient, name: str, state: RolloutState) -> None:
    """Set the traffic split in one tag write; the `rollout` alias follows the version."""
    client.get_model_version(name, state.version)  # an unknown version is refused first
    client.set_registered_model_alias(name, ROLLOUT_ALIAS, state.version)
    client.set_registered_model_tag(name, ROLLOUT_TAG, state.model_dump_json())


def clear_rollout(client: MlflowClient, name: str) -> RolloutState | None:
    """All traffic back to the champion (the tag goes first); returns the state that was on."""
    state = read_rollout(client, name)
    if state is not None:
        client.delete_registered_model_tag(name, ROLLOUT_TAG)
    try:
        client.delete_registered_model_alias(name, ROLLOUT_ALIAS)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST" and "not found" not in str(exc).lower():
            raise
    return state
