"""Monitoring, free of Prefect: reference and window, scoring, drift, the decision, publishing.

The typed records are re-exported here (`from prefect_mlops.monitoring import DriftSummary`).
"""

from prefect_mlops.monitoring.records import (
    DATA_INVALID,
    DRIFT_DETECTED,
    MODEL_RESOURCE_PREFIX,
    PERFORMANCE_DEGRADED,
    PREDICTION,
    Breach,
    BreachKind,
    ColumnDrift,
    DriftReport,
    DriftSummary,
    MonitoredModel,
    MonitoringDecision,
    Outcome,
    QualityChange,
    ReferenceDataError,
    ScoredRefs,
    WindowRef,
    WindowSpec,
    model_resource_id,
)

__all__ = [
    "DATA_INVALID",
    "DRIFT_DETECTED",
    "MODEL_RESOURCE_PREFIX",
    "PERFORMANCE_DEGRADED",
    "PREDICTION",
    "Breach",
    "BreachKind",
    "ColumnDrift",
    "DriftReport",
    "DriftSummary",
    "MonitoredModel",
    "MonitoringDecision",
    "Outcome",
    "QualityChange",
    "ReferenceDataError",
    "ScoredRefs",
    "WindowRef",
    "WindowSpec",
    "model_resource_id",
]
