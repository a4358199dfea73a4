"""Approval: a person approves or rejects a promotion in the Prefect UI before it happens."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from prefect_mlops.config import ApprovalConfig
from prefect_mlops.results import ModelVersionRef, PromotionDecision


class PromotionApproval(RunInput):
    """The form a reviewer fills in the Prefect UI to resume a paused training run."""

    approve: bool = Field(default=False, description="make this challenger the champion")
    comment: str = Field(default="", description="why (recorded on the model version)")


def request_approval(
    version: ModelVersionRef, promotion: PromotionDecision, approval: ApprovalConfig
) -> PromotionDecision:
    """Pause the flow run until a person answers; no answer before the timeout is a rejection.

    Called from the flow body, not a task: Prefect pauses flow runs, not task runs.
    """
    timeout = max(1, round(approval.timeout_minutes * 60))
    get_run_logger().info(
        "waiting up to %ss for approval to promote %s v%s (%s)",
        timeout,
        version.name,
        version.version,
        promotion.reason,
    )
    form = PromotionApproval.with_initial_data(
        description=(
            f"Promote **{version.name} v{version.version}** to `champion`?\n\n{promotion.reason}"
        ),
        approve=False,
    )
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=2)
    except FlowPauseTimeout:
        return PromotionDecision(
            promote=False, reason=f"no approval within {timeout}s: rejected, champion kept"
        )
    verdict = "approved" if answer.approve else "rejected"
    note = f" ({answer.comment})" if answer.comment else ""
    return PromotionDecision(
        promote=answer.approve, reason=f"{promotion.reason}; {verdict} by a reviewer{note}"
    )
