"""The monitoring decision: every breached threshold with its event, and the run's summary."""

from __future__ import annotations

from prefect_mlops.config import MonitoringConfig
from prefect_mlops.errors import MonitoringError
from prefect_mlops.monitoring.records import (
    DATA_INVALID,
    DRIFT_DETECTED,
    NO_TRAFFIC,
    PERFORMANCE_DEGRADED,
    Breach,
    DriftReport,
    DriftSummary,
    MonitoredModel,
    MonitoringDecision,
    WindowRef,
)
from prefect_mlops.results import ValidationSummary


def drift_breaches(report: DriftReport, cfg: MonitoringConfig) -> list[Breach]:
    """Feature drift above the share threshold, and prediction drift when it alarms."""
    breaches = []
    if report.drifted_share >= cfg.drift_share:
        breaches.append(
            Breach(
                kind="feature-drift",
                event=DRIFT_DETECTED,
                detail=f"{report.drifted_share:.0%} of features drifted "
                f"(threshold {cfg.drift_share:.0%}): {', '.join(report.drifted_columns)}",
            )
        )
    prediction = report.prediction
    if cfg.prediction_drift and prediction is not None and prediction.drifted:
        breaches.append(
            Breach(
                kind="prediction-drift",
                event=DRIFT_DETECTED,
                detail=f"predictions drifted ({prediction.method} "
                f"{prediction.score:.3g} > {prediction.threshold})",
            )
        )
    return breaches


def quality_breaches(report: DriftReport, cfg: MonitoringConfig) -> list[Breach]:
    """The primary metric worse than the holdout by more than the allowed drop."""
    quality = report.quality
    if quality is None or quality.relative_change is None:
        return []
    if quality.relative_change <= cfg.max_performance_drop:
        return []
    return [
        Breach(
            kind="performance",
            event=PERFORMANCE_DEGRADED,
            detail=f"{quality.metric} {quality.current:.4g} vs holdout "
            f"{quality.baseline:.4g}: {quality.relative_change:.0%} worse "
            f"(limit {cfg.max_performance_drop:.0%}, {quality.labeled_rows} labels)",
        )
    ]


def validation_breaches(validation: ValidationSummary, cfg: MonitoringConfig) -> list[Breach]:
    """More failed scoring expectations than allowed."""
    if len(validation.failed) <= cfg.max_validation_failures:
        return []
    return [
        Breach(
            kind="validation",
            event=DATA_INVALID,
            detail=f"{len(validation.failed)} scoring expectations failed "
            f"(limit {cfg.max_validation_failures})",
        )
    ]


def decide(
    report: DriftReport, validation: ValidationSummary, cfg: MonitoringConfig
) -> MonitoringDecision:
    """Every breached threshold, each with the event it raises."""
    breaches = [
        *drift_breaches(report, cfg),
        *quality_breaches(report, cfg),
        *validation_breaches(validation, cfg),
    ]
    reason = "; ".join(b.detail for b in breaches) or "all monitoring thresholds hold"
    return MonitoringDecision(
        outcome="alarm" if breaches else "ok", breaches=breaches, reason=reason
    )


# What an alarmed run's final state is called, by its first breach's kind.
ALARM_NAMES = {
    "feature-drift": "Drift detected",
    "prediction-drift": "Drift detected",
    "performance": "Performance degraded",
    "validation": "Data invalid",
    "no-traffic": "No traffic",
}


def alarm_name(decision: MonitoringDecision) -> str | None:
    """The name of an alarmed run's final state (`Drift detected`, ...); None without alarm."""
    if decision.outcome != "alarm" or not decision.breaches:
        return None
    return ALARM_NAMES[decision.breaches[0].kind]


def nothing_to_monitor(window: WindowRef) -> MonitoringDecision:
    """The outcome of an empty window: nothing to judge, no event."""
    return MonitoringDecision(
        outcome="nothing-to-monitor", reason=f"no rows in the current window ({window.source})"
    )


def judge_empty_window(
    window: WindowRef, model_name: str, cfg: MonitoringConfig
) -> MonitoringDecision:
    """An empty window of a log that holds the model's rows, by `monitoring.empty_window`: an
    alarm raising `mlops.model.no-traffic` (alarm), nothing to monitor (skip), or an error (fail).

    A log that is missing or was never written for the model is refused before this, when the
    window is read (`window.read_window`).
    """
    if cfg.empty_window == "skip":
        return nothing_to_monitor(window)
    where = f" of the prediction log {window.location}" if window.location else ""
    last = (
        f"; its latest prediction there was logged at {window.last_logged}"
        if window.last_logged
        else ""
    )
    detail = f"no traffic: no rows of {model_name} in the window ({window.source}){where}{last}"
    if cfg.empty_window == "fail":
        raise MonitoringError(f"{detail} (monitoring.empty_window: fail)")
    breach = Breach(kind="no-traffic", event=NO_TRAFFIC, detail=detail)
    return MonitoringDecision(outcome="alarm", breaches=[breach], reason=detail)


def summarize(
    model: MonitoredModel,
    window: WindowRef,
    config_path: str,
    decision: MonitoringDecision,
    drift: DriftReport | None = None,
    validation: ValidationSummary | None = None,
) -> DriftSummary:
    """The typed monitoring summary (what the flow returns and the events carry)."""
    return DriftSummary(
        model_name=model.name,
        model_version=model.version,
        alias=model.alias,
        config_path=config_path,
        window=window.source,
        window_location=window.location,
        current_rows=window.rows,
        labeled_rows=window.labeled_rows,
        reference_snapshot=model.snapshot_uri,
        window_start=window.start,
        window_end=window.end,
        decision=decision,
        drift=drift,
        validation=validation,
    )
