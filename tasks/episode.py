"""Episode tasks: a retraining run and the monitoring run whose event started it, linked both ways.

Prefect attaches the flow run an event is emitted in to the event (related resource in role
`flow-run`), so the trigger's event id is enough to find the monitoring run.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from uuid import UUID

from prefect import task
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate, LogCreate
from prefect.events.filters import EventFilter, EventIDFilter
from prefect.runtime import flow_run
from prefect.utilities.urls import url_for

from prefect_mlops.episode import RetrainingCause, cause_of
from prefect_mlops.names import artifact_key
from tasks.logs import run_logger
from tasks.policies import IO_RETRIES

# The server stores an event a moment after its trigger has fired (its persister writes in
# batches): a run started by the trigger may ask before the event is readable.
EVENT_WAIT_SECONDS = 30.0
EVENT_POLL_SECONDS = 2.0


@task(**IO_RETRIES, task_run_name="find the monitoring run of event {event_id}")
def find_retraining_cause(event_id: UUID) -> RetrainingCause | None:
    """The monitoring run whose event started this run: its name, page, decision and report
    (None, with a warning, when the server holds no such event)."""
    wanted = EventFilter(id=EventIDFilter(id=[event_id]))
    deadline = time.monotonic() + EVENT_WAIT_SECONDS
    with get_client(sync_client=True) as client:
        events = client.read_events(filter=wanted, limit=1).events
        while not events and time.monotonic() < deadline:
            time.sleep(EVENT_POLL_SECONDS)
            events = client.read_events(filter=wanted, limit=1).events
        if not events:
            run_logger().warning(
                "event %s that started this run is not on the Prefect server (after %.0f s): "
                "the run is not linked to the monitoring run that emitted it",
                event_id,
                EVENT_WAIT_SECONDS,
            )
            return None
        event = events[0]
        emitter = event.resource_in_role.get("flow-run")
        run_id = emitter.prefect_object_id("prefect.flow-run") if emitter else None
        cause = cause_of(event.event, str(event_id), event.payload, str(run_id) if run_id else None)
        if run_id is None:
            return cause
        monitoring = client.read_flow_run(run_id)
    page = url_for("flow-run", obj_id=run_id)
    # the Prefect UI makes a URL in a log line a link: one click back from this run's Logs tab
    run_logger().info("started by %s of monitoring run %s: %s", event.event, monitoring.name, page)
    return cause.model_copy(update={"flow_run_name": monitoring.name, "flow_run_url": page})


@task(**IO_RETRIES, task_run_name="link this run from {cause.flow_run_name}")
def link_from_monitoring_run(cause: RetrainingCause, model_name: str) -> None:
    """A link artifact on the monitoring run's page to this retraining run: one click from the
    alarm to what it started, whatever this run's gate decides (a markdown link, as Prefect's
    own link artifacts are)."""
    if cause.flow_run_id is None:
        return
    run_id, name = flow_run.get_id(), flow_run.get_name()
    url = url_for("flow-run", obj_id=run_id) if run_id else None
    text = f"retraining run {name}"
    monitoring_run = UUID(cause.flow_run_id)
    create_run_markdown(
        monitoring_run,
        artifact_key("retraining-run", model_name),
        f"[{text}]({url})" if url else f"{text} (flow run `{run_id}`)",
        f"{text}, started by this run's {cause.event} event {cause.event_id}",
    )
    # ... and a line in the monitoring run's log, the tab its page opens on, where the UI makes
    # the URL a link: one click from the alarm to the run it started
    line = f"{text} started by this run's {cause.event} event: {url or run_id}"
    with get_client(sync_client=True) as client:
        client.create_logs(
            [
                LogCreate(
                    name="prefect_mlops.episode",
                    level=logging.INFO,
                    message=line,
                    timestamp=datetime.now(UTC),
                    flow_run_id=monitoring_run,
                )
            ]
        )


def create_run_markdown(flow_run_id: UUID, key: str, markdown: str, description: str) -> None:
    """A markdown artifact of a flow run itself (any run, not only the current one), not of
    the task creating it: the Artifacts tab of Prefect 3.8's UI listed no task-run artifact of
    a run with 33 task runs (seen here), only the run's own."""
    artifact = ArtifactCreate(
        key=key, type="markdown", data=markdown, description=description, flow_run_id=flow_run_id
    )
    with get_client(sync_client=True) as client:
        client.create_artifact(artifact)
