"""Small typed records passed between tasks and returned by flows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Snapshot(BaseModel):
    """An immutable Parquet copy of ingested rows, named by its content fingerprint."""

    uri: str
    fingerprint: str
    rows: int
    columns: list[str]
    source: str


class FeatureSchema(BaseModel):
    """Which columns feed the model, by kind, and what the target is."""

    target: str
    task: str
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    datetime: list[str] = Field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical, *self.datetime]

    def columns(self, *extra: str) -> list[str]:
        """Features, target and `extra` columns, each once: what a task needs to read."""
        return list(dict.fromkeys([*self.features, self.target, *extra]))


class SplitRefs(BaseModel):
    """The train and holdout parts of a snapshot, written beside it."""

    train_uri: str
    holdout_uri: str
    train_rows: int
    holdout_rows: int


class FailedExpectation(BaseModel):
    """One expectation that did not hold, in words a person can act on."""

    expectation: str
    column: str | None = None
    observed: str = ""


class ValidationSummary(BaseModel):
    """The outcome of a Great Expectations checkpoint run on one batch."""

    success: bool
    checkpoint: str
    evaluated: int
    failed: list[FailedExpectation] = Field(default_factory=list)
    data_docs_url: str | None = None
    quarantine_uri: str | None = None

    def describe(self) -> str:
        """One line per failed expectation, for error messages and artifacts."""
        if self.success:
            return f"checkpoint {self.checkpoint}: all {self.evaluated} expectations passed"
        lines = [f"checkpoint {self.checkpoint}: {len(self.failed)} of {self.evaluated} failed"]
        lines += [
            f"  - {f.expectation}" + (f" on {f.column!r}" if f.column else "") + f": {f.observed}"
            for f in self.failed
        ]
        return "\n".join(lines)


class CandidateSpec(BaseModel):
    """One hyperparameter configuration of one estimator family."""

    name: str
    estimator: str
    params: dict[str, Any]
    index: int

    @property
    def label(self) -> str:
        return f"{self.name}-{self.index}"


class CandidateScore(BaseModel):
    """Cross-validated score of a candidate, and the nested MLflow run that holds it."""

    spec: CandidateSpec
    metric: str
    cv_mean: float
    cv_std: float
    fit_seconds: float
    run_id: str


class BaselineScore(BaseModel):
    """A scikit-learn dummy estimator's score on the same holdout: the bar any model must clear."""

    estimator: str = Field(description="e.g. DummyClassifier(strategy='most_frequent')")
    metric: str
    value: float
    predicts: str = Field(default="", description="what it answers for every row")


class Evaluation(BaseModel):
    """Holdout metrics overall and per slice, and the dummy baseline they are judged against."""

    metrics: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]] = Field(default_factory=dict)
    baseline: BaselineScore | None = None
    positive_label: str | int | bool | None = Field(
        default=None, description="the positive class of a binary classifier's metrics"
    )


class LoggedModel(BaseModel):
    """A model logged to MLflow but not (yet) registered."""

    model_uri: str
    run_id: str
    model_id: str | None = None


class GateCheck(BaseModel):
    """One rule of the model gate and whether it held."""

    rule: str
    passed: bool
    detail: str


class GateDecision(BaseModel):
    """The blessing decision: every rule, and whether all of them passed."""

    checks: list[GateCheck]
    champion_version: str | None = None
    champion_metrics: dict[str, float] | None = None

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def violations(self) -> list[GateCheck]:
        return [check for check in self.checks if not check.passed]


class ModelVersionRef(BaseModel):
    """A registered model version and the aliases that point at it."""

    name: str
    version: str
    aliases: list[str] = Field(default_factory=list)


class PreparedData(BaseModel):
    """The data of one training run once it passed its gate: snapshot, validation, schema, split."""

    snapshot: Snapshot
    validation: ValidationSummary
    feature_schema: FeatureSchema
    split: SplitRefs


class TrainingResult(BaseModel):
    """What the training flow returns: enough to find everything it produced."""

    snapshot: Snapshot
    validation: ValidationSummary
    best: CandidateScore
    evaluation: Evaluation
    decision: GateDecision
    model_version: ModelVersionRef
    promoted: bool
    promotion_reason: str = ""
    mlflow_run_id: str


class ChampionScore(BaseModel):
    """The current champion's metrics on the challenger's holdout."""

    version: str
    metrics: dict[str, float] = Field(default_factory=dict)
    error: str | None = Field(default=None, description="why it could not be scored, if so")


class PromotionDecision(BaseModel):
    """Whether a blessed challenger takes the champion alias, and why."""

    promote: bool
    reason: str
