"""A drift episode followed by links: the monitoring run whose alarm started a retraining run,
and the service answering with the version that run made champion.

The monitoring run's page links the retraining run it caused (`tasks.episode`), and the
training summary names the monitoring run, its decision and its drift report; with the service's
address known (`MLOPS_SERVICE_URL`, set by `mlops up`), it ends on the service's page of the model.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from prefect_mlops.monitoring.records import DriftSummary
from prefect_mlops.report_links import report_link
from prefect_mlops.reports import readable
from prefect_mlops.settings import Settings


class RetrainingCause(BaseModel):
    """The monitoring event that started a retraining run, and the run that emitted it."""

    event: str  # e.g. mlops.model.drift-detected
    event_id: str
    flow_run_id: str | None = None  # None: emitted outside a flow run (by hand, a script)
    flow_run_name: str | None = None
    flow_run_url: str | None = None  # its page in the Prefect UI, when the UI's address is known
    model_version: str | None = None  # the version monitoring judged
    decision: str | None = None  # what monitoring decided, and why
    report_uri: str | None = None  # its Evidently drift report


def cause_of(
    event: str, event_id: str, payload: dict[str, Any], flow_run_id: str | None
) -> RetrainingCause:
    """The cause named by a monitoring event: its payload is the monitoring run's summary."""
    summary = DriftSummary.model_validate(payload)
    return RetrainingCause(
        event=event,
        event_id=event_id,
        flow_run_id=flow_run_id,
        model_version=summary.model_version,
        decision=f"{summary.decision.outcome}: {summary.decision.reason}",
        report_uri=summary.report_uri,
    )


def cause_markdown(cause: RetrainingCause, settings: Settings) -> str:
    """`**Started by**: monitoring run <link> of v1 (alarm: ...), its drift report <link>`."""
    name = cause.flow_run_name or cause.flow_run_id
    if name is None:
        run = f"event `{cause.event}` ({cause.event_id}), emitted outside a flow run"
    elif cause.flow_run_url:
        run = f"monitoring run [{name}]({cause.flow_run_url})"
    else:
        run = f"monitoring run `{name}`"
    judged = f" of v{cause.model_version}" if cause.model_version else ""
    decision = f" ({readable(cause.decision)})" if cause.decision else ""
    report = (
        f"; its {report_link(cause.report_uri, settings, 'drift report')}"
        if cause.report_uri
        else ""
    )
    return f"**Started by**: {run}{judged}{decision}{report}.\n"


def service_markdown(service_url: str | None, name: str, version: str, promoted: bool) -> str:
    """`**Service**: <link to the service's page of the model> ...` when this run made `version`
    champion and the service's address is known; else "" (the version's MLflow page is linked
    beside it either way)."""
    if not (service_url and promoted):
        return ""
    url = service_model_url(service_url, name)
    return (
        f"**Service**: [{name} on the prediction service]({url}) answers with the champion: "
        f"v{version} once it has loaded it (it follows the alias).\n"
    )


def service_model_url(service_url: str, model_name: str) -> str:
    """The service's page of a model (Open Inference Protocol metadata: the version it answers
    with); 404 from a service that serves another model."""
    return f"{service_url.rstrip('/')}/v2/models/{quote(model_name, safe='')}"
