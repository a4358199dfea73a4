"""Reports a person reads: the gate decision, the candidate leaderboard and the run summary."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from prefect_mlops.config import PipelineConfig
from prefect_mlops.metrics import higher_is_better
from prefect_mlops.results import CandidateScore, ChampionScore, GateDecision, TrainingResult


def gate_markdown(decision: GateDecision) -> str:
    """The gate decision as a markdown table, one row per rule."""
    verdict = "BLESSED" if decision.passed else "REJECTED"
    rows = "\n".join(
        f"| {'pass' if c.passed else '**FAIL**'} | {c.rule} | {readable(c.detail)} |"
        for c in decision.checks
    )
    return f"## Model gate: {verdict}\n\n| result | rule | detail |\n|---|---|---|\n{rows}\n"


def leaderboard_markdown(scores: list[CandidateScore]) -> str:
    """Candidates ranked by mean CV score of the primary metric."""
    metric = scores[0].metric
    ranked = sorted(scores, key=lambda s: s.cv_mean, reverse=higher_is_better(metric))
    # Params as short wrapping text, not one code span: a dict in backticks cannot wrap, and the
    # Prefect UI clipped the table at its width.
    rows = "\n".join(
        f"| {i} | {s.spec.label} | {params_text(s.spec.params)} "
        f"| {number(s.cv_mean)} ± {number(s.cv_std, 2)} | {s.fit_seconds:.1f} |"
        for i, s in enumerate(ranked, 1)
    )
    return f"| rank | candidate | params | CV {metric} | seconds |\n|---|---|---|---|---|\n{rows}\n"


def number(value: float | None, digits: int = 4) -> str:
    """A metric as a person reads it: 4 significant digits (`57.11`, `0.7712`, `1.2e+04`);
    `-` when there is none."""
    return "-" if value is None else f"{value:.{digits}g}"


def params_text(params: dict[str, Any]) -> str:
    """Hyperparameters as `max_depth=12, min_samples_leaf=4`; floats to 4 significant digits."""
    return ", ".join(f"{k}={number(v) if isinstance(v, float) else v}" for k, v in params.items())


_LONG_FLOAT = re.compile(r"-?\d+\.\d{5,}(?:e[-+]?\d+)?")


def readable(text: str) -> str:
    """`text` with every long float (`57.110111780618396`) cut to 4 significant digits."""
    return _LONG_FLOAT.sub(lambda m: number(float(m.group())), text)


def training_summary_markdown(
    config: PipelineConfig,
    result: TrainingResult,
    scores: list[CandidateScore],
    tracking_uri: str,
    started_by: str = "",
) -> str:
    """One markdown page summarising a whole training run (or a rerun that trained nothing);
    `started_by` (markdown) says what started it, under the title."""
    snapshot, validation, decision = result.snapshot, result.validation, result.decision
    evaluation, version, run_id = result.evaluation, result.model_version, result.mlflow_run_id
    docs = f" ([Data Docs]({validation.data_docs_url}))" if validation.data_docs_url else ""
    started = f"\n{started_by.strip()}\n" if started_by else ""
    header = f"""# Training run: {config.name}
{started}
**Data**: {snapshot.rows:,} rows from `{snapshot.source}`, fingerprint `{snapshot.fingerprint}`,
snapshot `{snapshot.uri}`

**Validation**: {"passed" if validation.success else "FAILED"} ({validation.checkpoint}){docs}
"""
    if decision is None or evaluation is None:
        return f"""{header}
**Rerun of `{version.name}` v{version.version}** (aliases: {", ".join(version.aliases) or "-"}):
{readable(result.promotion_reason)}.
"""
    # Link text is plain: the Prefect UI shows backticks inside a link literally.
    url = mlflow_version_url(tracking_uri, version.name, version.version)
    plain = f"{version.name} v{version.version}"
    label = f"[{plain}]({url})" if url else f"`{version.name}` v{version.version}"
    registered = f"{label} (aliases: {', '.join(version.aliases)})"
    return f"""{header}
## Candidates
{leaderboard_markdown(scores)}
## Holdout
{_holdout_table(evaluation.metrics)}
{champion_markdown(decision.champion)}
{gate_markdown(decision)}
**Registry**: {registered}.

**Promotion**: {"promoted to champion" if result.promoted else "champion kept"}: \
{readable(result.promotion_reason)}.

**MLflow**: {mlflow_run_text(tracking_uri, run_id)}
"""


def _holdout_table(metrics: dict[str, float]) -> str:
    rows = "\n".join(f"| {name} | {number(value)} |" for name, value in metrics.items())
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
        f"| {name} | {number(value)} | {number(champion.metrics.get(name, float('nan')))} |"
        for name, value in champion.challenger_metrics.items()
    )
    return f"{title}\n{where}| metric | challenger | champion |\n|---|---|---|\n{table}\n"


def mlflow_ui_base(tracking_uri: str) -> str | None:
    """The MLflow UI's address when the tracking URI is a server's; None for a local store."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return None


def mlflow_run_url(tracking_uri: str, run_id: str) -> str | None:
    """The run's page in the MLflow UI (its direct route finds the experiment), or None."""
    base = mlflow_ui_base(tracking_uri)
    return f"{base}/#/runs/{run_id}" if base else None


def mlflow_version_url(tracking_uri: str, name: str, version: str) -> str | None:
    """The model version's page in the MLflow UI, or None."""
    base = mlflow_ui_base(tracking_uri)
    return f"{base}/#/models/{quote(name, safe='')}/versions/{version}" if base else None


def mlflow_run_text(tracking_uri: str, run_id: str | None) -> str:
    """The run as a link to the MLflow UI, or its id and the store when there is no server."""
    if run_id is None:
        return "no run"
    url = mlflow_run_url(tracking_uri, run_id)
    if url:
        return f"[run {run_id}]({url})"  # plain: backticks in a link show literally
    return (
        f"run `{run_id}` in `{tracking_uri}` (no MLflow server: `mlflow ui` on that store shows it)"
    )
