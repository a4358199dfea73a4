"""The typed pipeline configuration: one YAML file per dataset, validated by pydantic."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prefect_mlops.errors import ConfigError
from prefect_mlops.names import SafeName
from prefect_mlops.sources import Source


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskType(StrEnum):
    classification = "classification"
    regression = "regression"


class SplitConfig(StrictModel):
    """How the holdout is cut off: the latest rows (time), or by a hash of each row's key
    (random, stratified), so a row keeps its side across runs and training windows."""

    strategy: Literal["random", "stratified", "time"] = "random"
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0)
    time_column: str | None = None
    row_key: list[str] | None = Field(
        default=None,
        min_length=1,
        description="random/stratified: columns identifying a row (default: features and target)",
    )

    @model_validator(mode="after")
    def _check_time_column(self) -> SplitConfig:
        if self.strategy == "time" and not self.time_column:
            raise ValueError("split.time_column is required for a time split")
        return self


class WindowConfig(StrictModel):
    """The recent part of the data a retraining run uses: the last `days`, or the last `rows`."""

    time_column: str
    days: float | None = Field(default=None, gt=0)
    rows: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check_one_bound(self) -> WindowConfig:
        if (self.days is None) == (self.rows is None):
            raise ValueError("training_window needs exactly one of days or rows")
        return self


class CandidateConfig(StrictModel):
    """One estimator family and the grid of hyperparameters to search for it."""

    name: str
    estimator: str
    params: dict[str, Any] = Field(default_factory=dict, description="fixed parameters")
    search_space: dict[str, list[Any]] = Field(default_factory=dict)


class TuningConfig(StrictModel):
    """Cross-validated search: folds and a cap on configurations tried per candidate."""

    cv_folds: int = Field(default=3, ge=2, le=20)
    max_configs_per_candidate: int = Field(default=6, ge=1)
    # Candidates cross-validated at once. Each gets an equal share of the cores for its OpenMP
    # threads; 1 runs them one after another, each on every core, and bounds memory to one
    # candidate's working set. Default: one per CPU core, or 1 from 250k training rows on.
    parallel_candidates: int | None = Field(default=None, ge=1)


class Bound(StrictModel):
    """An absolute threshold on a holdout metric."""

    min: float | None = None
    max: float | None = None


class GateConfig(StrictModel):
    """The model gate: absolute thresholds and the comparison with the current champion."""

    primary_metric: str
    thresholds: dict[str, Bound] = Field(default_factory=dict)
    champion_tolerance: float = Field(
        default=0.0,
        ge=0.0,
        description="relative slack: a challenger may be this much worse than the champion",
    )
    min_improvement: float = Field(
        default=0.0,
        ge=0.0,
        description="relative gain over the champion required to move the champion alias",
    )
    min_comparison_rows: int = Field(
        default=30,
        ge=1,
        description="fewer holdout rows unseen by both models: promotion waits for a person",
    )
    beat_baseline: bool = Field(
        default=True,
        description="a classifier must beat scikit-learn's DummyClassifier(most_frequent) on "
        "balanced accuracy (a model answering one class for every row fails)",
    )


class ApprovalConfig(StrictModel):
    """Optional human approval before a blessed challenger takes the champion alias."""

    required: bool = False
    timeout_minutes: float = Field(default=60, gt=0, description="no answer in time rejects")


class ValidationConfig(StrictModel):
    """Which Great Expectations suite guards this data, and what a failure does."""

    suite: SafeName
    policy: Literal["fail", "warn"] = "fail"
    data_docs: Literal["on_failure", "always"] = Field(
        default="on_failure",
        description="rebuild the Data Docs site after a failed validation only, or after every "
        "one (the site's index grows with every stored result; `mlops suite docs` builds it)",
    )


class MonitoringConfig(StrictModel):
    """Thresholds of the monitoring flow: when drift, decay or bad data raise an alarm."""

    drift_share: float = Field(
        default=0.5, gt=0.0, le=1.0, description="alarm when this share of features drifts"
    )
    drift_method: str | None = Field(
        default=None, description="Evidently drift method for every feature; auto when unset"
    )
    drift_threshold: float | None = Field(
        default=None, gt=0.0, description="per-feature drift threshold; the method's default"
    )
    prediction_drift: bool = Field(default=True, description="alarm when the predictions drift")
    max_performance_drop: float = Field(
        default=0.2,
        ge=0.0,
        description="alarm when the primary metric is this much (relative) worse than holdout",
    )
    min_labeled_rows: int = Field(default=50, ge=1, description="fewer labels: drift only")
    max_validation_failures: int = Field(
        default=0, ge=0, description="alarm when more expectations than this fail"
    )
    # A log that holds the model's rows but none in the window: an hour without traffic, or a
    # service that stopped logging. Silence is not a pass unless the config says so.
    empty_window: Literal["alarm", "skip", "fail"] = Field(
        default="alarm",
        description="a log window without rows: alarm (state 'No traffic' and the "
        "mlops.model.no-traffic event), skip (nothing to monitor), or fail the run",
    )
    max_rows: int | None = Field(
        default=200_000,
        ge=1000,
        description="seeded sample of each side above this many rows for Evidently; None = all",
    )
    # Evidently 0.7's regression preset re-validates every distinct target value once per
    # metric (about 0.4 s per metric at 250k continuous labels), so its report draws a smaller
    # sample. The quality decision itself uses every labelled row.
    quality_report_max_rows: int = Field(
        default=50_000,
        ge=1000,
        description="seeded sample of each side for Evidently's quality report above this",
    )


class RolloutStep(StrictModel):
    """One step of a progressive rollout: the traffic split, its hold, and who must agree."""

    mode: Literal["shadow", "canary", "ab"]
    share: float = Field(default=0.0, ge=0.0, le=1.0, description="challenger's traffic share")
    hold_seconds: float | None = Field(
        default=None, ge=0.0, description="the step lasts at least this long"
    )
    hold_requests: int | None = Field(
        default=None, ge=1, description="... and until the challenger's arm saw this many requests"
    )
    timeout_seconds: float | None = Field(
        default=None, gt=0.0, description="undecided this long after it started: rolled back"
    )
    approval: bool = Field(default=False, description="a person approves before the step starts")
    name: str | None = Field(default=None, description="the step's name (default from the mode)")

    @model_validator(mode="after")
    def _check_step(self) -> RolloutStep:
        if self.mode == "shadow" and self.share != 0.0:
            raise ValueError("a shadow step answers no request: share must be 0")
        if self.mode != "shadow" and self.share <= 0.0:
            raise ValueError(f"a {self.mode} step needs a share above 0")
        if self.hold_seconds is None and self.hold_requests is None:
            raise ValueError("a rollout step needs hold_seconds and/or hold_requests")
        if self.timeout_seconds is not None and self.timeout_seconds <= (self.hold_seconds or 0):
            raise ValueError("a step's timeout_seconds must be longer than its hold_seconds")
        return self

    @property
    def label(self) -> str:
        """`shadow`, `canary 10%`, `ab 50%` (or the configured name)."""
        if self.name:
            return self.name
        return "shadow" if self.mode == "shadow" else f"{self.mode} {self.share * 100:g}%"


def _default_rollout_steps() -> list[RolloutStep]:
    return [
        RolloutStep(mode="shadow", hold_seconds=600, hold_requests=200),
        RolloutStep(mode="canary", share=0.1, hold_seconds=900, hold_requests=200),
        RolloutStep(mode="canary", share=0.5, hold_seconds=900, hold_requests=500),
    ]


class RolloutThresholds(StrictModel):
    """The live gate closing each rollout step (a rule without enough evidence keeps waiting)."""

    min_requests: int = Field(default=50, ge=1, description="per arm, before error and latency")
    max_error_rate: float = Field(default=0.01, ge=0.0, le=1.0, description="challenger's arm")
    max_latency_p99_ratio: float = Field(
        default=2.0, gt=0.0, description="challenger p99 at most this times the champion's ..."
    )
    latency_slack_seconds: float = Field(default=0.005, ge=0.0, description="... plus this")
    max_latency_p99_seconds: float | None = Field(
        default=None, gt=0.0, description="and at most this, absolute"
    )
    min_rows: int = Field(default=30, ge=2, description="logged rows per arm, before comparing")
    min_agreement: float = Field(
        default=0.9, ge=0.0, le=1.0, description="shadow: share of rows agreeing with the champion"
    )
    agreement_tolerance: float = Field(
        default=0.1,
        ge=0.0,
        description="regression: relative difference from the champion's answer that agrees",
    )
    prediction_drift: bool = Field(
        default=True, description="Evidently's drift test on the predictions, against the champion"
    )
    # A test at a small p-value: the arms' rows are samples, so a distance alone would roll back
    # good canaries on sampling noise at a few dozen rows.
    prediction_drift_method: str | None = Field(
        default=None,
        description="Evidently method on the predictions: ks (regression) and chisquare "
        "(classes) when unset",
    )
    prediction_drift_threshold: float = Field(
        default=0.01, gt=0.0, description="the method's threshold (a p-value for ks, chisquare)"
    )
    max_drift_share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="canary/ab: share of inputs drifting from the champion's",
    )
    min_labels: int = Field(default=30, ge=2, description="labelled rows per arm for the test")
    require_labels: bool = Field(
        default=False, description="a step waits for min_labels (else judged when they arrive)"
    )
    significance: float = Field(
        default=0.05, gt=0.0, lt=1.0, description="one-sided test: challenger worse on labels"
    )


class RolloutConfig(StrictModel):
    """Progressive delivery of a blessed challenger: steps, gates, where the service is."""

    enabled: bool = Field(
        default=False, description="training hands a blessed challenger to the rollout flow"
    )
    steps: list[RolloutStep] = Field(default_factory=_default_rollout_steps, min_length=1)
    key: str | None = Field(default=None, description="request field keeping a caller on one arm")
    service_urls: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:8000"],
        min_length=1,
        description="every replica of the service, for its /metrics",
    )
    log_url: str | None = Field(default=None, description="SQL prediction log; Parquet if unset")
    log_dir: str | None = Field(
        default=None, description="Parquet prediction log; the environment's when unset"
    )
    poll_seconds: float = Field(default=5.0, gt=0.0, description="how often evidence is read")
    step_timeout_seconds: float = Field(default=3600.0, gt=0.0)
    approve_promotion: bool = Field(default=False, description="a person approves the last move")
    thresholds: RolloutThresholds = RolloutThresholds()

    @model_validator(mode="after")
    def _check_rollout(self) -> RolloutConfig:
        if any(s.mode == "ab" for s in self.steps) and not self.key:
            raise ValueError("an ab step needs rollout.key (the request field callers stick by)")
        bad = [u for u in self.service_urls if not u.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"service_urls must be http(s) URLs, got {bad}")
        labels = [s.label for s in self.steps]
        if len(labels) != len(set(labels)):
            raise ValueError(f"rollout step names must be unique, got {labels}")
        short = [
            s.label
            for s in self.steps
            if s.timeout_seconds is None and (s.hold_seconds or 0) >= self.step_timeout_seconds
        ]
        if short:
            raise ValueError(f"steps {short} hold longer than step_timeout_seconds")
        return self

    def timeout_of(self, step: RolloutStep) -> float:
        """Seconds a step may take before it is rolled back undecided."""
        return step.timeout_seconds or self.step_timeout_seconds


class PipelineConfig(StrictModel):
    """Everything that defines one model: data, target, features, search, gates, registry."""

    # Names become registry keys, experiment names and path components (prefect_mlops.names).
    name: SafeName
    task: TaskType
    target: str
    positive_label: str | int | bool | None = Field(
        default=None,
        description="positive class of a binary classifier (PR AUC, monitoring); "
        "the training data's minority class when unset",
    )
    source: Source
    features: list[str] | None = Field(
        default=None, description="feature columns; inferred from the data when omitted"
    )
    categorical_features: list[str] = Field(default_factory=list)
    datetime_features: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list, description="never used as features")
    split: SplitConfig = SplitConfig()
    training_window: WindowConfig | None = Field(
        default=None, description="recent data used when a run asks for window 'recent'"
    )
    seed: int = 42
    tuning: TuningConfig = TuningConfig()
    candidates: list[CandidateConfig] = Field(min_length=1)
    gate: GateConfig
    approval: ApprovalConfig = ApprovalConfig()
    validation: ValidationConfig
    monitoring: MonitoringConfig = MonitoringConfig()
    rollout: RolloutConfig = RolloutConfig()
    slices: list[str] = Field(default_factory=list)
    registered_model_name: SafeName
    experiment_name: SafeName | None = None

    @model_validator(mode="after")
    def _check_consistency(self) -> PipelineConfig:
        from prefect_mlops.metrics import is_class_recall, metric_names

        names = metric_names(self.task)
        per_class = self.task == TaskType.classification
        unknown = sorted(
            m
            for m in {self.gate.primary_metric, *self.gate.thresholds}
            if m not in names and not (per_class and is_class_recall(m))
        )
        if unknown:
            extra = " or recall_<class>" if per_class else ""
            raise ValueError(
                f"gate names metrics {unknown} unknown for {self.task}; use {names}{extra}"
            )
        if is_class_recall(self.gate.primary_metric) and self.gate.primary_metric not in names:
            raise ValueError(
                f"gate.primary_metric {self.gate.primary_metric!r}: a per-class recall can be "
                f"a gate threshold, not the metric candidates are ranked on; use one of {names}"
            )
        if self.positive_label is not None and self.task != TaskType.classification:
            raise ValueError("positive_label applies to task classification only")
        if self.target in self.exclude or self.target in (self.features or []):
            raise ValueError(f"target {self.target!r} must not be listed as a feature or exclusion")
        if self.split.strategy == "stratified" and self.task != TaskType.classification:
            raise ValueError("split.strategy stratified needs task classification")
        seen = [c.name for c in self.candidates]
        if len(seen) != len(set(seen)):
            raise ValueError(f"candidate names must be unique, got {seen}")
        return self

    @property
    def experiment(self) -> str:
        """MLflow experiment name (defaults to the registered model name)."""
        return self.experiment_name or self.registered_model_name

    def fingerprint(self) -> str:
        """A stable hash of the whole config, recorded on every model version."""
        # How a version is delivered is not what it is: the rollout section is left out, so
        # configs written before it existed keep their hash (reruns are still recognised).
        canonical = json.dumps(self.model_dump(mode="json", exclude={"rollout"}), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML file; errors name the offending field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline config not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"pipeline config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"pipeline config {path} must be a mapping of fields")
    return parse_config(raw, origin=str(path))


def validation_problems(exc: ValidationError, root: str = "<root>") -> str:
    """Pydantic's report as one line: `field.path: message; ...` (`root` for whole-model errors)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or root}: {err['msg']}" for err in exc.errors()
    )


def parse_config(raw: dict[str, Any], origin: str = "<config>") -> PipelineConfig:
    """Validate a config mapping, translating pydantic's report into one readable error."""
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise ConfigError(f"invalid pipeline config {origin}: {problems}") from exc
