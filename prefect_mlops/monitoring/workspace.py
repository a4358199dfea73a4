"""The local Evidently workspace: one project per model, each monitoring run's snapshots in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evidently.core.report import Snapshot as EvidentlySnapshot
from evidently.sdk.models import PanelMetric
from evidently.sdk.panels import line_plot_panel
from evidently.ui.workspace import Workspace

from prefect_mlops.monitoring.drift import DRIFT_SNAPSHOT, QUALITY_SNAPSHOT
from prefect_mlops.monitoring.publish import project_name, run_folder_of
from prefect_mlops.monitoring.records import PREDICTION, DriftSummary

PROJECT_TAB = "Monitoring"


def dashboard_panels() -> list[Any]:
    """Drift share, prediction drift and the quality metric of each task, over time."""
    share = PanelMetric(
        legend="share", metric="DriftedColumnsCount", metric_labels={"value_type": "share"}
    )
    prediction = PanelMetric(
        legend="prediction", metric="ValueDrift", metric_labels={"column": PREDICTION}
    )
    return [
        line_plot_panel("Share of drifted features", [share], size="half"),
        line_plot_panel("Prediction drift score", [prediction], size="half"),
        line_plot_panel(
            "RMSE (regression)", [PanelMetric(legend="rmse", metric="RMSE")], size="half"
        ),
        line_plot_panel(
            "Accuracy (classification)",
            [PanelMetric(legend="accuracy", metric="Accuracy")],
            size="half",
        ),
    ]


def ensure_project(workspace: Any, name: str) -> Any:
    """The workspace project `name`, created with drift and quality panels on first use."""
    found = workspace.search_project(name)
    if found:
        return found[0]
    project = workspace.create_project(
        name, description="monitoring runs of the prefect-mlops flow"
    )
    for panel in dashboard_panels():
        project.dashboard.add_panel(panel, tab=PROJECT_TAB)
    return project


def add_to_workspace(summary: DriftSummary, root: Path) -> DriftSummary:
    """Add the run's Evidently snapshots to the model's project in the workspace at `root`."""
    folder = run_folder_of(summary)
    workspace = Workspace(str(root))
    project = ensure_project(workspace, project_name(summary.model_name))
    name = f"v{summary.model_version} {summary.window}"
    ids = {}
    for key, data in (
        ("evidently_snapshot_id", DRIFT_SNAPSHOT),
        ("evidently_quality_snapshot_id", QUALITY_SNAPSHOT),
    ):
        if (folder / data).is_file():
            snapshot = EvidentlySnapshot.load(str(folder / data))
            ref = workspace.add_run(project.id, snapshot, include_data=False, name=name)
            ids[key] = str(ref.id)
    return summary.model_copy(update=ids)
