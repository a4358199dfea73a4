"""Final states that say why: a run stopped by one of the project's gates or checks fails with
that reason as its state message (what the Prefect UI shows beside the red state), not
Prefect's "Flow run encountered an exception: ModelGateError: ..."."""

from __future__ import annotations

from typing import Any

from prefect.states import Failed

from prefect_mlops.errors import MlopsError


def failed_with_reason(error: MlopsError) -> Any:
    """The flow's return value for a run `error` stopped: a Failed state whose message is the
    error's own words; calling the flow still raises `error` (typed Any so the flow keeps its
    result type)."""
    return Failed(message=str(error), data=error)
