"""Typed records of monitoring: the monitored model, window, drift, decision and summary."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field, model_validator

from prefect_mlops.errors import MlopsError
from prefect_mlops.prediction_log import ONLINE, LogSource
from prefect_mlops.results import ValidationSummary

DRIFT_DETECTED = "mlops.model.drift-detected"
PERFORMANCE_DEGRADED = "mlops.model.performance-degraded"
DATA_INVALID = "mlops.model.data-invalid"
# The model's log holds its rows but none in the window (`monitoring.empty_window: alarm`).
NO_TRAFFIC = "mlops.model.no-traffic"
MODEL_RESOURCE_PREFIX = "mlops.model."
# The event resource's label naming the deployment (flow/name) that retrains the model: each
# retrain trigger matches its own deployment's name there, so one event starts one training run
# (a model with its own train-<model> is not retrained by prefect.yaml's catch-all as well).
RETRAIN_DEPLOYMENT_LABEL = "mlops.retrain.deployment"
CATCH_ALL_RETRAINING = "training/train"
# The prediction column of windows and reports; the prediction log's own name for it, so a
# window read from the log keeps what was served.
PREDICTION = "prediction"
# A window's logged class probabilities (one list per row, in the model's class order), and
# the prefix of the per-class probability columns of scored frames (`proba:<class>`).
PROBABILITIES = "prediction_probabilities"
PROBABILITY_PREFIX = "proba:"

Outcome = Literal["nothing-to-monitor", "ok", "alarm"]
BreachKind = Literal["feature-drift", "prediction-drift", "performance", "validation", "no-traffic"]


class ReferenceDataError(MlopsError):
    """The reference data of a model version (the snapshot it was trained on) cannot be found."""


def model_resource_id(name: str) -> str:
    """The Prefect event resource id of a registered model, e.g. `mlops.model.bikeshare-demand`."""
    return f"{MODEL_RESOURCE_PREFIX}{name}"


def model_retraining_deployment(name: str) -> str:
    """The deployment `mlops deploy --config` makes to retrain one model, e.g.
    `training/train-bikeshare-demand`."""
    return f"{CATCH_ALL_RETRAINING}-{name}"


class WindowSpec(BaseModel):
    """The current window: the last hours, days or rows of the prediction log, or a dataset."""

    hours: float | None = Field(default=None, gt=0, description="the last N hours of the log")
    days: float | None = Field(default=None, gt=0, description="the last N days of the log")
    rows: int | None = Field(default=None, gt=0, description="the last N rows")
    dataset_path: str | None = Field(
        default=None, description="a CSV or Parquet file to monitor instead of the log"
    )
    log_dir: str | None = Field(
        default=None, description="Parquet prediction log; <artifact root>/prediction_log if unset"
    )
    log_url: str | None = Field(default=None, description="SQLAlchemy URL of a SQL prediction log")
    sources: list[LogSource] = Field(
        default_factory=lambda: [ONLINE],
        min_length=1,
        description="which logged rows: online (the service), batch (scoring runs), shadow",
    )

    @model_validator(mode="after")
    def _check_bounds(self) -> WindowSpec:
        if self.hours is not None and self.days is not None:
            raise ValueError("give at most one of hours or days")
        if self.dataset_path and (self.hours is not None or self.days is not None):
            raise ValueError("hours and days apply to the prediction log, not to dataset_path")
        return self

    def short(self) -> str:
        """The window in a few words for a run name: `last 24h`, `last 7d`, `last 500 rows`,
        `dataset july.csv`, `all rows`."""
        if self.dataset_path:
            name = self.dataset_path.replace("\\", "/").rsplit("/", 1)[-1]
            return f"dataset {name}" + (f" last {self.rows} rows" if self.rows else "")
        parts = []
        if self.hours is not None:
            parts.append(f"last {self.hours:g}h")
        elif self.days is not None:
            parts.append(f"last {self.days:g}d")
        if self.rows is not None:
            parts.append(f"last {self.rows} rows")
        return ", ".join(parts) or "all rows"

    def describe(self) -> str:
        """A short label, e.g. "log: last 24 hours" or "dataset: data/july.csv (last 500 rows)"."""
        bound = (
            f"last {self.hours:g} hours"
            if self.hours is not None
            else f"last {self.days:g} days"
            if self.days is not None
            else "all rows"
        )
        if self.rows is not None:
            bound = (
                f"{bound}, last {self.rows} rows"
                if bound != "all rows"
                else f"last {self.rows} rows"
            )
        if self.dataset_path:
            return f"dataset {self.dataset_path}: {bound}"
        kinds = "" if self.sources == ["online"] else f" ({', '.join(self.sources)} rows)"
        return f"prediction log{kinds}: {bound}"


class MonitoredModel(BaseModel):
    """The registered model version behind an alias, and the data it was trained on."""

    name: str
    alias: str
    version: str
    run_id: str
    snapshot_uri: str
    fingerprint: str
    baseline: dict[str, float] = Field(
        default_factory=dict, description="holdout metrics logged by its training run"
    )
    positive_label: str | int | bool | None = Field(
        default=None, description="a binary classifier's positive class, as its training chose"
    )
    holdout_uri: str | None = Field(
        default=None, description="the training run's holdout split, when its file still exists"
    )
    missing_holdout: str | None = Field(
        default=None, description="the holdout split its training run logged, when it is gone"
    )


class WindowRef(BaseModel):
    """The current window written as Parquet (features, target where labelled, prediction)."""

    uri: str
    rows: int
    labeled_rows: int
    source: str
    has_logged_predictions: bool = False
    has_logged_probabilities: bool = False
    start: str | None = Field(default=None, description="earliest row time (ISO), if known")
    end: str | None = Field(default=None, description="latest row time (ISO), if known")
    location: str = Field(
        default="",
        description="where the rows were read: the log's folder or URL (password "
        "masked), or the dataset",
    )
    last_logged: str | None = Field(
        default=None, description="of an empty log window: the model's latest logged row (ISO)"
    )


class ScoredRefs(BaseModel):
    """Reference and current data, and the monitored model's predictions of each (one column)."""

    reference_uri: str
    current_uri: str
    reference_predictions_uri: str
    current_predictions_uri: str | None = Field(
        default=None, description="unset when the window's logged predictions are used, or none"
    )
    reference_rows: int
    current_rows: int
    prediction_source: Literal["model", "log", "none"]
    holdout_uri: str | None = Field(
        default=None, description="the version's holdout: the quality report's reference side"
    )
    holdout_predictions_uri: str | None = None
    schema_problems: list[str] = Field(default_factory=list)
    classes: list[str | int | bool] | None = Field(
        default=None,
        description="a classifier's classes, in the order of its probability columns",
    )


SnapshotKind = Literal["drift", "quality"]


class SnapshotLabels(BaseModel):
    """What names an Evidently snapshot in the workspace: the model version, the window, the run.

    Drift and quality snapshots of one run share everything but their kind, so the workspace
    lists them apart (`bikeshare-demand v3 drift: last 24 hours`) and dashboards filter on tags.
    """

    model: str
    version: str
    alias: str
    window: str
    window_start: str | None = None
    window_end: str | None = None
    rows: int = 0
    flow_run_id: str | None = None

    def name(self, kind: SnapshotKind) -> str:
        """E.g. `bikeshare-demand v3 drift: prediction log: last 24 hours`."""
        return f"{self.model} v{self.version} {kind}: {self.window}"

    def tags(self, kind: SnapshotKind) -> list[str]:
        """The kind, then `model=`, `version=` and `alias=` tags (what panels filter on)."""
        return [kind, f"model={self.model}", f"version={self.version}", f"alias={self.alias}"]

    def metadata(self, kind: SnapshotKind, **extra: str | int) -> dict[str, str]:
        """Every field as text (Evidently keeps metadata as strings), plus `extra`."""
        fields = {
            "kind": kind,
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "window": self.window,
            "window_start": self.window_start or "-",
            "window_end": self.window_end or "-",
            "rows": self.rows,
            "monitoring_flow_run_id": self.flow_run_id or "-",
            **extra,
        }
        return {key: str(value) for key, value in fields.items()}


class ColumnDrift(BaseModel):
    """Drift of one column: Evidently's score, method and verdict (or the schema problem)."""

    column: str
    drifted: bool
    score: float | None = None
    method: str = ""
    threshold: float | None = None
    detail: str = ""


class QualityChange(BaseModel):
    """The primary metric on labelled current rows against the version's training holdout."""

    metric: str
    current: float
    baseline: float | None
    relative_change: float | None = Field(
        default=None, description="how much worse than baseline (positive = worse)"
    )
    labeled_rows: int
    current_metrics: dict[str, float] = Field(default_factory=dict)


class DriftReport(BaseModel):
    """What the Evidently run found, wrapped at the boundary."""

    columns: list[ColumnDrift]
    drifted_share: float
    prediction: ColumnDrift | None = None
    quality: QualityChange | None = None
    schema_problems: list[str] = Field(
        default_factory=list, description="features missing from the window or retyped"
    )
    html_uri: str
    quality_html_uri: str | None = None
    problems: list[str] = Field(
        default_factory=list,
        description="what could not be computed and why (the rest of the report stands)",
    )
    reference_rows: int
    current_rows: int
    sampled: bool = False

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the columns that drifted (schema problems included)."""
        return [c.column for c in self.columns if c.drifted]


class Breach(BaseModel):
    """One violated monitoring threshold and the event it raises."""

    kind: BreachKind
    event: str
    detail: str


class MonitoringDecision(BaseModel):
    """The verdict: nothing to monitor, all within thresholds, or an alarm listing each breach."""

    outcome: Outcome
    breaches: list[Breach] = Field(default_factory=list)
    reason: str = ""

    @property
    def events(self) -> list[str]:
        """Distinct event names to emit, in breach order."""
        return list(dict.fromkeys(b.event for b in self.breaches))


class DriftSummary(BaseModel):
    """What the monitoring flow returns and what its events carry as payload.

    The drift report and the validation result are held whole (unset when the window was empty);
    a new metric of either needs no change here.
    """

    model_name: str
    model_version: str
    alias: str
    config_path: str = ""
    window: str
    window_location: str = Field(default="", description="where the window was read")
    current_rows: int
    labeled_rows: int = 0
    reference_snapshot: str = ""
    window_start: str | None = None
    window_end: str | None = None
    decision: MonitoringDecision
    drift: DriftReport | None = None
    validation: ValidationSummary | None = None
    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None
    evidently_snapshot_id: str | None = None
    evidently_quality_snapshot_id: str | None = None
    events: list[str] = Field(default_factory=list, description="ids of the events emitted")

    # Headline figures, derived from `drift`: serialised too, so automations' templates, the
    # benchmark's JSON and dashboards read them without walking the report.
    @computed_field  # type: ignore[prop-decorator]
    @property
    def drifted_share(self) -> float:
        """Share of the model's features that drifted."""
        return self.drift.drifted_share if self.drift else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def drifted_columns(self) -> list[str]:
        """Features that drifted."""
        return self.drift.drifted_columns if self.drift else []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def prediction_drift(self) -> bool | None:
        """Whether the predictions drifted; None when there were none to compare."""
        prediction = self.drift.prediction if self.drift else None
        return prediction.drifted if prediction else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def report_uri(self) -> str | None:
        """The Evidently drift report (HTML)."""
        return self.drift.html_uri if self.drift else None

    @property
    def alarm(self) -> bool:
        """True when a threshold was breached."""
        return self.decision.outcome == "alarm"
