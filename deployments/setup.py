"""What prefect.yaml cannot express: the work pool, notification automations and blocks.

    python -m deployments.setup          # against $PREFECT_API_URL; idempotent

Secrets never come from YAML: the notification webhook URL is read from
`MLOPS_NOTIFY_WEBHOOK_URL` and the prediction service token from `MLOPS_SERVE_TOKEN`, and both are
stored server-side in blocks.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import cast

from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.exceptions import ObjectNotFound
from prefect.variables import Variable

from deployments.deploy import DeployError, check_server
from prefect_mlops.monitoring.records import DRIFT_DETECTED, NO_TRAFFIC, PERFORMANCE_DEGRADED

WORK_POOL = "mlops-process"
NOTIFY_BLOCK = "mlops-notify"
SERVE_TOKEN_BLOCK = "mlops-serve-token"
STALE_VARIABLE = "mlops_model_name"
# A quiet window (mlops.model.no-traffic: a served model logged nothing) pages too: the service
# may be down, or its log may go where monitoring does not read.
MODEL_EVENTS = (DRIFT_DETECTED, PERFORMANCE_DEGRADED, NO_TRAFFIC)


def ensure_work_pool() -> str:
    """Create the process work pool the deployments run on, unless it exists."""
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(WORK_POOL)
            return f"work pool {WORK_POOL}: exists"
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
            return f"work pool {WORK_POOL}: created"


def ensure_notifications(webhook_url: str) -> list[str]:
    """A webhook block and two automations: model drift, decay or silence, and any failed flow
    run."""
    block = CustomWebhookNotificationBlock(
        name="mlops", url=webhook_url, json_data={"text": "{{body}}", "title": "{{subject}}"}
    )
    block_id = block.save(NOTIFY_BLOCK, overwrite=True)
    automations = [
        Automation(
            name="mlops: model drift or decay",
            description=(
                "Notify when a monitoring run reports drift (mlops.model.drift-detected), a "
                "performance drop (mlops.model.performance-degraded) or no traffic in its window "
                "(mlops.model.no-traffic) of any model; the message "
                "names the model version, window, reason, report and MLflow run."
            ),
            trigger=EventTrigger(
                match={"prefect.resource.id": "mlops.model.*"},
                expect=set(MODEL_EVENTS),
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=[
                SendNotification(
                    block_document_id=block_id,
                    subject="{{ event.event }} on {{ event.resource.id }}",
                    body=(
                        "{{ event.payload.model_name }} v{{ event.payload.model_version }} "
                        "(@{{ event.payload.alias }}), {{ event.payload.window }}: "
                        "{{ event.payload.decision.reason }} (report: "
                        "{{ event.payload.report_uri or 'none' }}, MLflow run: "
                        "{{ event.payload.mlflow_run_id or 'none' }})"
                    ),
                )
            ],
        ),
        Automation(
            name="mlops: flow run failed",
            description=(
                "Notify when any flow run fails; the message is the run's state message, which "
                "names the failed gate or check."
            ),
            trigger=EventTrigger(
                match={"prefect.resource.id": "prefect.flow-run.*"},
                expect={"prefect.flow-run.Failed"},
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=[
                SendNotification(
                    block_document_id=block_id,
                    subject="Flow run {{ flow_run.name }} failed",
                    body="{{ flow.name }}/{{ flow_run.name }}: {{ flow_run.state.message }}",
                )
            ],
        ),
    ]
    return [_replace_automation(automation) for automation in automations]


def _replace_automation(automation: Automation) -> str:
    with contextlib.suppress(ValueError):  # ValueError: not there yet
        # `read` is sync-compatible: called from synchronous code it returns the automation.
        cast(Automation, Automation.read(name=automation.name)).delete()
    automation.create()
    return f"automation {automation.name!r}: created"


def main() -> None:
    try:
        url = check_server()
    except DeployError as exc:
        raise SystemExit(f"error: {exc}") from exc
    lines = [f"Prefect server: {url}", ensure_work_pool()]
    webhook = os.environ.get("MLOPS_NOTIFY_WEBHOOK_URL")
    if webhook:
        lines += ensure_notifications(webhook)
    else:
        lines.append("notifications: skipped (set MLOPS_NOTIFY_WEBHOOK_URL to enable)")
    token = os.environ.get("MLOPS_SERVE_TOKEN")
    if token:
        Secret(value=token).save(SERVE_TOKEN_BLOCK, overwrite=True)
        lines.append(f"secret block {SERVE_TOKEN_BLOCK}: saved")
    # Earlier set-ups stored a variable nothing reads; a dead variable only misleads.
    if Variable.unset(STALE_VARIABLE):
        lines.append(f"variable {STALE_VARIABLE}: removed (nothing reads it)")
    print("\n".join(lines), file=sys.stdout)


if __name__ == "__main__":
    main()
