"""The monitoring summary's Prefect artifacts: the decision with each report linked by its URL."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from prefect_mlops.config import MonitoringConfig
from prefect_mlops.monitoring.decision import decide, summarize
from prefect_mlops.settings import Settings
from tasks.publish_monitoring import publish_monitoring_summary
from tests.prefect_mlops.monitoring.test_decision import FAILED, MODEL, WINDOW, report
from tests.tasks.test_validate import artifact_of

REPORTS = "http://127.0.0.1:8090"


def test_the_summary_and_link_artifacts_point_at_the_report_server(tmp_path: Path) -> None:
    # A local MLflow store (no MLflow UI to link to): the reports are still one click away.
    settings = Settings(artifact_root=tmp_path, reports_url=REPORTS).model_copy(
        update={"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}  # read by its env alias
    )
    folder = settings.monitoring_dir / MODEL.name / "run 1"
    drift = report(share=0.6).model_copy(
        update={
            "html_uri": str(folder / "report.html"),
            "quality_html_uri": str(folder / "quality.html"),
        }
    )
    summary = summarize(MODEL, WINDOW, "c.yaml", decide(drift, FAILED, MonitoringConfig()), drift)

    @flow
    def publish_in_a_flow() -> None:
        publish_monitoring_summary(summary, settings)

    state = publish_in_a_flow(return_state=True)
    flow_run_id = state.state_details.flow_run_id
    base = f"{REPORTS}/monitoring/{MODEL.name}/run%201"
    markdown = artifact_of(flow_run_id, f"monitoring-{MODEL.name}")
    assert f"[drift report]({base}/report.html)" in markdown
    assert f"[quality report]({base}/quality.html)" in markdown
    assert f"({base}/report.html)" in artifact_of(flow_run_id, f"drift-report-{MODEL.name}")
    assert f"({base}/quality.html)" in artifact_of(flow_run_id, f"quality-report-{MODEL.name}")
