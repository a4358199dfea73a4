"""The local Evidently workspace: one project per model, each monitoring run's snapshots in it.

Snapshots arrive named, tagged and described by the drift module (`SnapshotLabels`); the
project's dashboard is chosen by the model's task, so a regression model shows no empty
accuracy panel and a classifier no empty error panel. A project made by an earlier version of
this code gets the current panels on its next monitoring run (its other tabs are left alone).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from evidently.core.report import Snapshot as EvidentlySnapshot
from evidently.sdk.models import DashboardModel, DashboardPanelPlot, DashboardTabModel, PanelMetric
from evidently.sdk.panels import counter_panel, line_plot_panel
from evidently.ui.workspace import Workspace
from filelock import FileLock

from prefect_mlops.config import TaskType
from prefect_mlops.monitoring.drift import DRIFT_SNAPSHOT, QUALITY_SNAPSHOT
from prefect_mlops.monitoring.publish import project_name, run_folder_of
from prefect_mlops.monitoring.records import PREDICTION, DriftSummary

PROJECT_TAB = "Monitoring"
WORKSPACE_LOCK_SECONDS = 300.0
DRIFT_TAGS, QUALITY_TAGS = ["drift"], ["quality"]


def drift_panels() -> list[Any]:
    """The latest drift share first, then drift share and prediction drift over time."""
    share = PanelMetric(
        legend="share",
        metric="DriftedColumnsCount",
        metric_labels={"value_type": "share"},
        tags=DRIFT_TAGS,
    )
    prediction = PanelMetric(
        legend="prediction",
        metric="ValueDrift",
        metric_labels={"column": PREDICTION},
        tags=DRIFT_TAGS,
    )
    return [
        counter_panel("Share of drifted features, latest run", [share], size="half"),
        counter_panel("Prediction drift score, latest run", [prediction], size="half"),
        line_plot_panel("Share of drifted features", [share], size="half"),
        line_plot_panel("Prediction drift score", [prediction], size="half"),
    ]


def _quality(legend: str, metric: str, **labels: str) -> PanelMetric:
    return PanelMetric(legend=legend, metric=metric, metric_labels=labels, tags=QUALITY_TAGS)


def quality_panels(task: TaskType, binary: bool) -> list[Any]:
    """Quality over time in the task's own metrics (on labelled rows against the holdout).

    Regression: MAE and RMSE. Classification: accuracy and F1; a binary classifier also ROC
    AUC (its quality report carries the positive class's probability).
    """
    if task == TaskType.regression:
        return [
            line_plot_panel("MAE", [_quality("MAE", "MAE", value_type="mean")], size="half"),
            line_plot_panel("RMSE", [_quality("RMSE", "RMSE")], size="half"),
        ]
    panels = [
        line_plot_panel("Accuracy", [_quality("accuracy", "Accuracy")], size="half"),
        line_plot_panel("F1 score", [_quality("F1", "F1Score")], size="half"),
    ]
    if binary:
        panels.append(line_plot_panel("ROC AUC", [_quality("ROC AUC", "RocAuc")], size="half"))
    return panels


def dashboard_panels(task: TaskType, binary: bool = False) -> list[Any]:
    """The dashboard of a model's project: drift first, then the task's quality metrics."""
    return [*drift_panels(), *quality_panels(task, binary)]


def _content(panel: DashboardPanelPlot) -> dict[str, Any]:
    # What a panel shows, whatever its id (each panel built gets a new one).
    return panel.dict(exclude={"id"})


def updated_dashboard(
    current: DashboardModel, wanted: list[DashboardPanelPlot]
) -> DashboardModel | None:
    """`current` with its monitoring tab showing exactly `wanted`, in order; None when it
    already does. Panels of other tabs (a person's own) are kept; the tab's old panels go."""
    tab = next((t for t in current.tabs if t.title == PROJECT_TAB), None)
    by_id = {panel.id: panel for panel in current.panels}
    shown = [by_id[i] for i in tab.panels if i in by_id] if tab else []
    if [_content(p) for p in shown] == [_content(p) for p in wanted]:
        return None
    elsewhere = {i for t in current.tabs if t is not tab for i in t.panels}
    kept = [panel for panel in current.panels if panel.id in elsewhere]
    mine = DashboardTabModel(
        id=tab.id if tab else uuid.uuid4(), title=PROJECT_TAB, panels=[p.id for p in wanted]
    )
    tabs = [mine if t is tab else t for t in current.tabs] if tab else [*current.tabs, mine]
    return DashboardModel(tabs=tabs, panels=[*kept, *wanted])


def ensure_project(workspace: Any, name: str, task: TaskType, binary: bool = False) -> Any:
    """The workspace project `name`, created on first use, its monitoring tab showing the
    task's current panels (an existing project's old panels are replaced, once)."""
    found = workspace.search_project(name)
    project = (
        found[0]
        if found
        else workspace.create_project(
            name, description=f"monitoring runs of {name.removeprefix('mlops-')} ({task} model)"
        )
    )
    dashboard = updated_dashboard(
        workspace.get_dashboard(project.id), dashboard_panels(task, binary)
    )
    if dashboard is not None:
        workspace.save_dashboard(project.id, dashboard)
    return project


def add_to_workspace(
    summary: DriftSummary, root: Path, task: TaskType, binary: bool = False
) -> DriftSummary:
    """Add the run's Evidently snapshots (as named at their run) to the model's project."""
    folder = run_folder_of(summary)
    # Evidently's local workspace reads every project's files when it opens and writes a
    # snapshot without a rename: concurrent monitoring runs (one worker pool, many models) read
    # each other's half-written JSON (a JSONDecodeError seen at 20 models through two workers).
    # One lock per workspace folder serialises opening and adding, for every process on hosts
    # that share the folder's file system.
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".mlops-workspace.lock"), timeout=WORKSPACE_LOCK_SECONDS):
        return _add_snapshots(summary, folder, root, task, binary)


def _add_snapshots(
    summary: DriftSummary, folder: Path, root: Path, task: TaskType, binary: bool
) -> DriftSummary:
    workspace = Workspace(str(root))
    project = ensure_project(workspace, project_name(summary.model_name), task, binary)
    ids = {}
    for key, data in (
        ("evidently_snapshot_id", DRIFT_SNAPSHOT),
        ("evidently_quality_snapshot_id", QUALITY_SNAPSHOT),
    ):
        if (folder / data).is_file():
            snapshot = EvidentlySnapshot.load(str(folder / data))
            ref = workspace.add_run(project.id, snapshot, include_data=False)
            ids[key] = str(ref.id)
    return summary.model_copy(update=ids)
