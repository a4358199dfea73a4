"""Reports a person reads: the gate decision, the candidate leaderboard and the run summary."""

from __future__ import annotations

from prefect_mlops.config import PipelineConfig
from prefect_mlops.metrics import higher_is_better
from prefect_mlops.results import CandidateScore, GateDecision, TrainingResult


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


def training_summary_markdown(
    config: PipelineConfig,
    result: TrainingResult,
    scores: list[CandidateScore],
    tracking_uri: str,
) -> str:
    """One markdown page summarising a whole training run."""
    snapshot, validation, decision = result.snapshot, result.validation, result.decision
    evaluation, version, run_id = result.evaluation, result.model_version, result.mlflow_run_id
    promotion = result.promotion_reason
    champion = decision.champion_metrics or {}
    metrics = "\n".join(
        f"| {name} | {value:.4g} | {champion[name]:.4g} |"
        if name in champion
        else f"| {name} | {value:.4g} | - |"
        for name, value in evaluation.metrics.items()
    )
    registered = f"`{version.name}` v{version.version} (aliases: {', '.join(version.aliases)})"
    docs = f" ([Data Docs]({validation.data_docs_url}))" if validation.data_docs_url else ""
    return f"""# Training run: {config.name}

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
**Registry**: {registered}.

**Promotion**: {"promoted to champion" if result.promoted else "champion kept"}: {promotion}.

**MLflow**: run `{run_id}` on `{tracking_uri}`
"""
