"""Small typed records passed between tasks and returned by flows."""

from __future__ import annotations

from typing import Any, Literal

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


class SplitLineage(BaseModel):
    """How a holdout was cut, recorded with every version: a later run learns from it which of
    its own holdout rows that version never trained on."""

    strategy: str
    test_size: float
    assignment: Literal["time", "hash"] = Field(
        description="time: the latest rows held out; hash: a row's side follows its key's hash"
    )
    row_key: list[str] = Field(default_factory=list, description="hash: the columns hashed")
    hash_scheme: str | None = Field(default=None, description="hash: how rows are hashed")
    time_column: str | None = None
    train_end: str | None = Field(
        default=None, description="the latest time_column value in the train part (ISO 8601)"
    )


class SplitRefs(BaseModel):
    """The train and holdout parts of a snapshot, written beside it, and how they were cut."""

    train_uri: str
    holdout_uri: str
    train_rows: int
    holdout_rows: int
    lineage: SplitLineage


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

    @property
    def title(self) -> str:
        """The candidate as a person reads it: `random_forest max_depth=12 min_samples_leaf=4`."""
        params = " ".join(f"{k}={_readable(v)}" for k, v in self.params.items())
        return f"{self.name} {params}".strip()


def _readable(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


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


class ComparedRows(BaseModel):
    """The holdout rows challenger and champion were compared on: neither trained on them."""

    rows: int
    of_holdout: int
    basis: str = Field(description="why the champion never trained on them, in words")
    time_column: str | None = None
    first: str | None = Field(default=None, description="earliest time_column value compared")
    last: str | None = Field(default=None, description="latest time_column value compared")


class ChampionScore(BaseModel):
    """The current champion and the challenger, scored on the same rows neither trained on."""

    version: str
    metrics: dict[str, float] = Field(default_factory=dict)
    challenger_metrics: dict[str, float] = Field(default_factory=dict)
    compared_on: ComparedRows | None = None
    error: str | None = Field(default=None, description="why it could not be scored, if so")
    not_comparable: str | None = Field(
        default=None, description="why no honest comparison exists (no rows neither saw), if so"
    )


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
    champion: ChampionScore | None = Field(
        default=None, description="the comparison itself: both models' metrics and the rows"
    )

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
    """What the training flow returns: enough to find everything it produced. A rerun (same
    snapshot and config as an existing version) trains nothing: `rerun_of` names that version,
    `model_version` is it, and best, evaluation, decision and the MLflow run are absent."""

    snapshot: Snapshot
    validation: ValidationSummary
    best: CandidateScore | None = None
    evaluation: Evaluation | None = None
    decision: GateDecision | None = None
    model_version: ModelVersionRef
    promoted: bool
    promotion_reason: str = ""
    mlflow_run_id: str | None = None
    rerun_of: str | None = Field(default=None, description="the version a rerun matched")


class PromotionDecision(BaseModel):
    """Whether a blessed challenger takes the champion alias, and why."""

    promote: bool
    reason: str
