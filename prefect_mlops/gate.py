"""The model gate: bless a candidate only when every rule holds, naming every violation."""

from __future__ import annotations

import math

from prefect_mlops.config import GateConfig
from prefect_mlops.errors import ModelGateError
from prefect_mlops.metrics import is_better, is_no_worse
from prefect_mlops.results import (
    ChampionScore,
    Evaluation,
    GateCheck,
    GateDecision,
    PromotionDecision,
    ValidationSummary,
)

# The version tag holding why a challenger was or was not promoted (the registry sets it too).
PROMOTION_REASON_TAG = "promotion_reason"


def threshold_checks(evaluation: Evaluation, gate: GateConfig) -> list[GateCheck]:
    """One check per configured absolute threshold."""
    checks = []
    for metric, bound in sorted(gate.thresholds.items()):
        value = evaluation.metrics.get(metric, math.nan)
        ok = math.isfinite(value)
        if bound.min is not None:
            ok = ok and value >= bound.min
        if bound.max is not None:
            ok = ok and value <= bound.max
        limits = " and ".join(
            part
            for part in (
                f">= {bound.min}" if bound.min is not None else "",
                f"<= {bound.max}" if bound.max is not None else "",
            )
            if part
        )
        checks.append(
            GateCheck(rule=f"{metric} {limits}", passed=ok, detail=f"{metric} = {value:.4g}")
        )
    return checks


def baseline_checks(evaluation: Evaluation, gate: GateConfig) -> list[GateCheck]:
    """A classifier better than scikit-learn's DummyClassifier(most_frequent) on balanced
    accuracy on the same holdout: a model answering one class for every row fails however high
    its accuracy on imbalanced data."""
    baseline = evaluation.baseline
    if not gate.beat_baseline or baseline is None:
        return []
    mine = evaluation.metrics.get(baseline.metric, math.nan)
    ok = math.isfinite(mine) and is_better(baseline.metric, mine, baseline.value)
    return [
        GateCheck(
            rule=f"{baseline.metric} better than {baseline.estimator}",
            passed=ok,
            detail=f"candidate {mine:.4g} vs {baseline.value:.4g} of the dummy answering "
            f"{baseline.predicts}",
        )
    ]


def champion_check(champion: ChampionScore | None, gate: GateConfig) -> GateCheck:
    """No worse than the current champion on the rows neither was trained on, within the
    tolerance. A champion that cannot be compared does not block registration: promotion then
    waits for a person (`decide_promotion`)."""
    metric = gate.primary_metric
    rule = f"{metric} no worse than champion (tolerance {gate.champion_tolerance:.0%})"
    if champion is None:
        return GateCheck(rule=rule, passed=True, detail="no champion yet")
    if champion.error is not None:
        return GateCheck(
            rule=rule,
            passed=True,
            detail=f"champion v{champion.version} cannot score this holdout ({champion.error})",
        )
    reason = champion.not_comparable or _unscored(champion)
    if reason is not None:
        return GateCheck(rule=rule, passed=True, detail=f"not compared: {reason}")
    mine, theirs = champion.challenger_metrics[metric], champion.metrics[metric]
    ok = is_no_worse(metric, mine, theirs, gate.champion_tolerance)
    return GateCheck(
        rule=rule,
        passed=ok,
        detail=f"challenger {mine:.4g} vs champion v{champion.version} {theirs:.4g}"
        f"{_on_rows(champion)}",
    )


def _unscored(champion: ChampionScore) -> str | None:
    """Why a champion score without the challenger's metrics on the same rows is no comparison."""
    if champion.compared_on is None or not champion.challenger_metrics:
        return "the two were not scored on the same rows neither was trained on"
    return None


def _on_rows(champion: ChampionScore) -> str:
    rows = champion.compared_on
    return "" if rows is None else f" on {rows.rows:,} of {rows.of_holdout:,} holdout rows"


def decide(
    evaluation: Evaluation,
    champion: ChampionScore | None,
    load_check: GateCheck,
    gate: GateConfig,
) -> GateDecision:
    """Collect every gate rule into one decision."""
    return GateDecision(
        checks=[
            *threshold_checks(evaluation, gate),
            *baseline_checks(evaluation, gate),
            champion_check(champion, gate),
            load_check,
        ],
        champion_version=champion.version if champion else None,
        champion_metrics=champion.metrics if champion else None,
        champion=champion,
    )


def decide_promotion(
    evaluation: Evaluation,
    champion: ChampionScore | None,
    validation: ValidationSummary,
    challenger_version: str,
    gate: GateConfig,
) -> PromotionDecision:
    """Whether a blessed challenger replaces the champion: only when strictly better on rows
    neither was trained on, from data that passed validation. A champion that cannot score the
    holdout (the schema changed), one with no such rows, or data that failed validation under
    `warn` leaves the decision to a person.

    `evaluation` (the challenger on its whole holdout) is not compared: the champion never saw
    only some of those rows, so both are judged on `champion.challenger_metrics` and
    `champion.metrics`, scored on the same unseen rows (prefect_mlops.comparison)."""
    by_hand = f"promotion waits for a person: `mlops promote {challenger_version}`"
    if not validation.success:
        return PromotionDecision(
            promote=False,
            reason=f"data validation failed ({len(validation.failed)} of "
            f"{validation.evaluated} expectations of {validation.checkpoint}, policy warn); "
            f"{by_hand}",
        )
    if champion is None:
        return PromotionDecision(promote=True, reason="no comparable champion: none exists yet")
    if champion.error is not None:
        return PromotionDecision(
            promote=False,
            reason=f"champion v{champion.version} cannot score the challenger's holdout "
            f"({champion.error}), so they cannot be compared; {by_hand}",
        )
    reason = champion.not_comparable or _unscored(champion)
    if reason is not None:
        return PromotionDecision(
            promote=False,
            reason=f"not compared with champion v{champion.version}: {reason}; {by_hand}",
        )
    metric = gate.primary_metric
    mine, theirs = champion.challenger_metrics[metric], champion.metrics[metric]
    verdict = "beats" if is_better(metric, mine, theirs, gate.min_improvement) else "does not beat"
    return PromotionDecision(
        promote=verdict == "beats",
        reason=f"{metric} {mine:.4g} {verdict} champion v{champion.version} ({theirs:.4g})"
        f"{_on_rows(champion)}",
    )


def check_model_gate(decision: GateDecision) -> None:
    """Raise ModelGateError naming every violated rule when the candidate is not blessed."""
    if not decision.passed:
        reasons = "; ".join(f"{c.rule} ({c.detail})" for c in decision.violations)
        raise ModelGateError(f"model not blessed, nothing registered: {reasons}")
