"""Report: Prefect artifacts a person reads in the UI: the gate decision and the run summary."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from prefect_mlops.config import PipelineConfig
from prefect_mlops.metrics import higher_is_better
from prefect_mlops.names import artifact_key
from prefect_mlops.results import (
    CandidateScore,
    Evaluation,
    GateDecision,
    ModelVersionRef,
    Snapshot,
    ValidationSummary,
)


def gate_markdown(decision: GateDecision) -> str:
    """The gate decision as a markdown table, one row per rule."""
    verdict = "BLESSED" if decision.passed else "REJECTED"
    rows = "\n".join(
        f"| {'pass' if c.passed else '**FAIL**'} | {c.rule} | {c.detail} |" for c in decision.checks
    )
    return f"## Model gate: {verdict}\n\n| result | rule | detail |\n|---|---|---|\n{rows}\n"


def leaderboard_markdown(scores: list[CandidateScore]) -> str:
    """Candidates ranked by mean CV score of the primary metric."""
    metric = scores[0].metric
    ranked = sorted(scores, key=lambda s: s.cv_mean, reverse=higher_is_better(metric))
    rows = "\n".join(
        f"| {i} | {s.spec.label} | {s.spec.estimator} | `{s.spec.params}` "
        f"| {s.cv_mean:.4g} ± {s.cv_std:.2g} | {s.fit_seconds:.1f} |"
        for i, s in enumerate(ranked, 1)
    )
    return (
        f"| rank | candidate | estimator | params | CV {metric} | seconds |\n"
        f"|---|---|---|---|---|---|\n{rows}\n"
    )


@task
def publish_gate_decision(decision: GateDecision, config: PipelineConfig) -> None:
    """Publish the gate decision and its reasons as a Prefect artifact."""
    create_markdown_artifact(
        markdown=gate_markdown(decision),
        key=artifact_key("gate", config.name),
        description=f"model gate decision for {config.registered_model_name}",
    )


@task
def publish_leaderboard(scores: list[CandidateScore], config: PipelineConfig) -> None:
    """Publish the candidate leaderboard as a Prefect table artifact."""
    create_table_artifact(
        table=[
            {
                "candidate": s.spec.label,
                "estimator": s.spec.estimator,
                "params": str(s.spec.params),
                f"cv_{s.metric}": round(s.cv_mean, 6),
                "cv_std": round(s.cv_std, 6),
            }
            for s in scores
        ],
        key=artifact_key("leaderboard", config.name),
        description="cross-validated candidates",
    )


@task
def publish_training_summary(
    config: PipelineConfig,
    snapshot: Snapshot,
    validation: ValidationSummary,
    scores: list[CandidateScore],
    evaluation: Evaluation,
    decision: GateDecision,
    version: ModelVersionRef | None,
    promotion: str,
    tracking_uri: str,
    run_id: str,
) -> None:
    """Publish one markdown artifact summarising the whole training run."""
    champion = decision.champion_metrics or {}
    metrics = "\n".join(
        f"| {name} | {value:.4g} | {champion[name]:.4g} |"
        if name in champion
        else f"| {name} | {value:.4g} | - |"
        for name, value in evaluation.metrics.items()
    )
    registered = (
        f"`{version.name}` v{version.version} (aliases: {', '.join(version.aliases)})"
        if version
        else "nothing registered"
    )
    docs = f" ([Data Docs]({validation.data_docs_url}))" if validation.data_docs_url else ""
    markdown = f"""# Training run: {config.name}

**Data**: {snapshot.rows:,} rows from `{snapshot.source}`, fingerprint `{snapshot.fingerprint}`,
snapshot `{snapshot.uri}`

**Validation**: {"passed" if validation.success else "FAILED"} ({validation.checkpoint}){docs}

## Candidates
{leaderboard_markdown(scores)}
## Challenger vs champion (holdout)
| metric | challenger | champion v{decision.champion_version or "-"} |
|---|---|---|
{metrics}

{gate_markdown(decision)}
**Registry**: {registered}. **Promotion**: {promotion}.

**MLflow**: run `{run_id}` on `{tracking_uri}`
"""
    create_markdown_artifact(
        markdown=markdown,
        key=artifact_key("training", config.name),
        description=f"training summary for {config.registered_model_name}",
    )
