"""The Evidently workspace: snapshots named, tagged and described; panels chosen by task type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evidently.sdk.models import PanelMetric
from evidently.sdk.panels import line_plot_panel, text_panel
from evidently.ui.workspace import Workspace

from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.monitoring import SnapshotLabels
from prefect_mlops.monitoring.drift import compute_drift
from prefect_mlops.monitoring.workspace import (
    PROJECT_TAB,
    dashboard_panels,
    ensure_project,
    updated_dashboard,
)
from tests.prefect_mlops.monitoring.conftest import small_frame

LABELS = SnapshotLabels(
    model="m",
    version="3",
    alias="champion",
    window="prediction log: last 24 hours",
    window_start="2026-01-01T00:00:00+00:00",
    window_end="2026-01-02T00:00:00+00:00",
    rows=300,
    flow_run_id="f-1",
)


def titles(panels: list) -> list[str]:
    return [p.title for p in panels]


def test_regression_dashboard_shows_errors_and_no_accuracy() -> None:
    shown = titles(dashboard_panels(TaskType.regression))
    assert {"MAE", "RMSE", "Share of drifted features"} <= set(shown)
    assert not any("ccuracy" in t or "F1" in t or "AUC" in t for t in shown)
    assert shown[0] == "Share of drifted features, latest run"  # the summary comes first


def test_classification_dashboard_shows_class_metrics_and_no_errors() -> None:
    multiclass = titles(dashboard_panels(TaskType.classification))
    binary = titles(dashboard_panels(TaskType.classification, binary=True))
    assert {"Accuracy", "F1 score"} <= set(multiclass) and "ROC AUC" not in multiclass
    assert set(binary) - set(multiclass) == {"ROC AUC"}
    assert not {"MAE", "RMSE"} & set(binary)


def test_a_new_project_gets_its_tasks_panels(tmp_path: Path) -> None:
    workspace = Workspace(str(tmp_path / "ws"))
    regression = ensure_project(workspace, "mlops-r", TaskType.regression)
    classifier = ensure_project(workspace, "mlops-c", TaskType.classification, binary=True)
    assert ensure_project(workspace, "mlops-r", TaskType.regression).id == regression.id
    stored = {
        name: titles(workspace.get_project(project.id).dashboard.model().panels)
        for name, project in (("r", regression), ("c", classifier))
    }
    assert "MAE" in stored["r"] and "Accuracy" not in stored["r"]
    assert "ROC AUC" in stored["c"] and "MAE" not in stored["c"]


def old_project(workspace: Workspace, name: str):
    """A project as the first monitoring code made it: untagged series, both tasks' panels."""
    project = workspace.create_project(
        name, description="monitoring runs of the prefect-mlops flow"
    )
    for panel in [
        line_plot_panel(
            "Share of drifted features",
            [PanelMetric(legend="share", metric="DriftedColumnsCount")],
            size="half",
        ),
        line_plot_panel(
            "RMSE (regression)", [PanelMetric(legend="rmse", metric="RMSE")], size="half"
        ),
        line_plot_panel(
            "Accuracy (classification)",
            [PanelMetric(legend="accuracy", metric="Accuracy")],
            size="half",
        ),
    ]:
        project.dashboard.add_panel(panel, tab=PROJECT_TAB)
    project.dashboard.add_panel(text_panel("my notes"), tab="Mine")  # a person's own tab
    return project


def test_an_existing_projects_old_panels_are_brought_up_to_date_once(tmp_path: Path) -> None:
    root = str(tmp_path / "ws")
    project = old_project(Workspace(root), "mlops-r")
    for _ in range(2):  # a new workspace each time, as each monitoring run opens it
        workspace = Workspace(root)
        assert ensure_project(workspace, "mlops-r", TaskType.regression).id == project.id
        dashboard = workspace.get_dashboard(project.id)
        tabs = {tab.title: tab.panels for tab in dashboard.tabs}
        by_id = {panel.id: panel for panel in dashboard.panels}
        shown = [by_id[i] for i in tabs[PROJECT_TAB]]
        assert titles(shown) == titles(dashboard_panels(TaskType.regression))
        assert shown[-1].values[0].tags == ["quality"]  # the current series, not the old ones
        assert titles([by_id[i] for i in tabs["Mine"]]) == ["my notes"]
        assert len(dashboard.panels) == len(shown) + 1  # the old panels are gone, none twice
    assert len(Workspace(root).search_project("mlops-r")) == 1
    current = Workspace(root).get_dashboard(project.id)
    assert updated_dashboard(current, dashboard_panels(TaskType.regression)) is None  # no rewrite


def test_drift_and_quality_snapshots_are_named_tagged_and_described(
    small_config: PipelineConfig, tmp_path: Path
) -> None:
    holdout = small_frame(80, 2)
    found = compute_drift(
        small_frame(300, 0),
        small_frame(300, 1),
        small_config,
        [],
        {"rmse": 0.1},
        tmp_path,
        holdout=holdout,
        labels=LABELS,
    )
    drift = json.loads((tmp_path / "evidently-snapshot.json").read_text())
    quality = json.loads((tmp_path / "evidently-quality.json").read_text())
    assert drift["name"] == "m v3 drift: prediction log: last 24 hours"
    assert quality["name"] == "m v3 quality: prediction log: last 24 hours"
    assert drift["tags"] == ["drift", "model=m", "version=3", "alias=champion"]
    assert quality["tags"][0] == "quality"
    for snapshot in (drift, quality):
        meta = snapshot["metadata"]
        assert meta["window_start"] == "2026-01-01T00:00:00+00:00"
        assert meta["window_end"] == "2026-01-02T00:00:00+00:00"
        assert (meta["model"], meta["version"], meta["alias"]) == ("m", "3", "champion")
        assert (meta["rows"], meta["monitoring_flow_run_id"]) == ("300", "f-1")
    assert quality["metadata"]["reference"] == "holdout (80 rows)"
    assert found.report.quality is not None


def test_the_drift_report_opens_with_its_summary(small_config: PipelineConfig) -> None:
    found = compute_drift(small_frame(300, 0), small_frame(300, 1, shift=3.0), small_config, [], {})
    widgets = json.loads(found.snapshot.dumps())["widgets"]
    # the dataset-level verdict and counts, then one table of every feature, then the rest
    assert "Dataset Drift" in json.dumps(widgets[0])
    assert "Share of Drifted Columns" in json.dumps(widgets[1])
    table = next(i for i, w in enumerate(widgets) if w["type"] == "big_table")
    assert table <= 3 and "1 out of 3" in widgets[table]["title"]
    assert [c.column for c in found.report.columns if c.drifted] == ["moving"]


@pytest.mark.parametrize("kind", ["drift", "quality"])
def test_labels_name_each_kind_apart(kind: str) -> None:
    other = "quality" if kind == "drift" else "drift"
    assert LABELS.name(kind) != LABELS.name(other)  # type: ignore[arg-type]
    assert LABELS.tags(kind)[0] == kind  # type: ignore[arg-type]
