"""Reports a person reads: the gate decision, the candidate leaderboard and the run summary."""

from __future__ import annotations

from prefect_mlops.config import PipelineConfig
from prefect_mlops.metrics import higher_is_better
from prefect_mlops.results import CandidateScore, ChampionScore, GateDecision, TrainingResult


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
    """One markdown page summarising a whole training run (or a rerun that trained nothing)."""
    snapshot, validation, decision = result.snapshot, result.validation, result.decision
    evaluation, version, run_id = result.evaluation, result.model_version, result.mlflow_run_id
    docs = f" ([Data Docs]({validation.data_docs_url}))" if validation.data_docs_url else ""
    header = f"""# Training run: {config.name}

**Data**: {snapshot.rows:,} rows from `{snapshot.source}`, fingerprint `{snapshot.fingerprint}`,
snapshot `{snapshot.uri}`

**Validation**: {"passed" if validation.success else "FAILED"} ({validation.checkpoint}){docs}
"""
    if decision is None or evaluation is None:
        return f"""{header}
**Rerun of `{version.name}` v{version.version}** (aliases: {", ".join(version.aliases) or "-"}):
{result.promotion_reason}.
"""
    registered = f"`{version.name}` v{version.version} (aliases: {', '.join(version.aliases)})"
    return f"""{header}
## Candidates
{leaderboard_markdown(scores)}
## Holdout
{_holdout_table(evaluation.metrics)}
{champion_markdown(decision.champion)}
{gate_markdown(decision)}
**Registry**: {registered}.

**Promotion**: {"promoted to champion" if result.promoted else "champion kept"}: \
{result.promotion_reason}.

**MLflow**: run `{run_id}` on `{tracking_uri}`
"""


def _holdout_table(metrics: dict[str, float]) -> str:
    rows = "\n".join(f"| {name} | {value:.4g} |" for name, value in metrics.items())
    return f"| metric | challenger |\n|---|---|\n{rows}\n"


def champion_markdown(champion: ChampionScore | None) -> str:
    """The challenger against the champion on the rows neither trained on, or why not."""
    if champion is None:
        return "## Challenger vs champion\nNo champion yet.\n"
    title = f"## Challenger vs champion v{champion.version}"
    if champion.error is not None:
        return f"{title}\nThe champion cannot score this holdout: {champion.error}.\n"
    if champion.not_comparable is not None:
        return f"{title}\nNot compared: {champion.not_comparable}.\n"
    rows = champion.compared_on
    where = ""
    if rows is not None:
        span = f", {rows.time_column} {rows.first} to {rows.last}" if rows.first else ""
        where = (
            f"On the {rows.rows:,} of {rows.of_holdout:,} holdout rows neither model was "
            f"trained on ({rows.basis}{span}).\n\n"
        )
    table = "\n".join(
        f"| {name} | {value:.4g} | {champion.metrics.get(name, float('nan')):.4g} |"
        for name, value in champion.challenger_metrics.items()
    )
    return f"{title}\n{where}| metric | challenger | champion |\n|---|---|---|\n{table}\n"
