"""The rollout gate: live evidence of one rollout step and the decision that closes it.

Evidence comes from two places. The service's `/metrics` (every replica, scraped at the step's
start and again at each look; counters are differenced per replica, a restart counts from zero)
gives each arm's requests, errors and scoring-time histogram, whose p99 is interpolated from its
buckets as Prometheus' `histogram_quantile` does. The prediction log gives each arm's rows since
the step started: shadow rows paired with the champion's by request id and row, predictions and
inputs compared with Evidently (prefect_mlops.monitoring.drift), labels once they arrive.

Each rule is `pass`, `breach`, `waiting` (not enough evidence yet) or `skipped` (does not apply,
or labels not required and not there). One breach decides at once; a step passes when no rule
breaches or waits. Prefect-free: tasks/rollout.py runs it in a loop and publishes it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, NamedTuple

import httpx
import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from prefect_mlops.config import (
    PipelineConfig,
    RolloutStep,
    RolloutThresholds,
    TaskType,
)
from prefect_mlops.errors import MlopsError
from prefect_mlops.monitoring.drift import column_drift, compute_drift
from prefect_mlops.monitoring.records import PREDICTION
from prefect_mlops.names import confined
from prefect_mlops.prediction_log import LogRead, read_model_log
from prefect_mlops.registry import CHALLENGER, CHAMPION, version_by_alias
from prefect_mlops.rollout import RolloutState

# The service's per-arm series (serving/metrics.py).
ARM_REQUESTS = "mlops_serve_arm_requests_total"
ARM_SECONDS_BUCKET = "mlops_serve_arm_seconds_bucket"
SHADOW_DROPPED = "mlops_serve_shadow_dropped_total"

RuleStatus = Literal["pass", "breach", "waiting", "skipped"]
Verdict = Literal["pass", "breach", "waiting"]


class RolloutError(MlopsError):
    """A rollout cannot run: no champion, no challenger, or the challenger is the champion."""


class ArmCounts(BaseModel):
    """One arm's (and version's) requests, errors and cumulative scoring-time buckets."""

    model_config = ConfigDict(frozen=True)

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = Field(default_factory=dict, description="le -> count up to it")

    def since(self, earlier: ArmCounts | None) -> ArmCounts:
        """What was counted after `earlier`; all of it when the counters restarted."""
        if earlier is None or self.requests < earlier.requests:
            return self
        return ArmCounts(
            requests=self.requests - earlier.requests,
            errors=max(0.0, self.errors - earlier.errors),
            buckets={le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
        )

    def plus(self, other: ArmCounts) -> ArmCounts:
        les = set(self.buckets) | set(other.buckets)
        return ArmCounts(
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            buckets={le: self.buckets.get(le, 0.0) + other.buckets.get(le, 0.0) for le in les},
        )

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def quantile(self, q: float) -> float | None:
        return histogram_quantile(q, self.buckets)


class MetricsScrape(BaseModel):
    """The per-arm series of one replica at one moment (or why it could not be read)."""

    url: str
    arms: dict[str, ArmCounts] = Field(default_factory=dict, description="'arm/version' keys")
    shadow_dropped: float = 0.0
    error: str | None = None


def arm_key(arm: str, version: str) -> str:
    return f"{arm}/{version}"


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of a cumulative histogram, linear within a bucket (Prometheus' rule: a
    rank in the +Inf bucket answers the highest finite bound); None without observations."""
    bounds = sorted(buckets)
    total = buckets.get(math.inf, buckets[bounds[-1]] if bounds else 0.0)
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def parse_metrics(text: str, url: str = "") -> MetricsScrape:
    """The arm series of one `/metrics` text (other series ignored)."""
    requests: dict[str, float] = {}
    errors: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    dropped = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == ARM_REQUESTS:
                key = arm_key(labels.get("arm", ""), labels.get("version", ""))
                requests[key] = requests.get(key, 0.0) + sample.value
                if labels.get("outcome") == "error":
                    errors[key] = errors.get(key, 0.0) + sample.value
            elif sample.name == ARM_SECONDS_BUCKET:
                key = arm_key(labels.get("arm", ""), labels.get("version", ""))
                buckets.setdefault(key, {})[float(labels["le"])] = sample.value
            elif sample.name == SHADOW_DROPPED:
                dropped += sample.value
    keys = set(requests) | set(buckets)
    arms = {
        k: ArmCounts(
            requests=requests.get(k, 0.0), errors=errors.get(k, 0.0), buckets=buckets.get(k, {})
        )
        for k in keys
    }
    return MetricsScrape(url=url, arms=arms, shadow_dropped=dropped)


def scrape_metrics(
    urls: Iterable[str], token: str | None = None, timeout: float = 5.0
) -> list[MetricsScrape]:
    """Every replica's `/metrics`; one that does not answer is a scrape with its error."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    scrapes = []
    for url in urls:
        try:
            response = httpx.get(f"{url.rstrip('/')}/metrics", headers=headers, timeout=timeout)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            scrapes.append(MetricsScrape(url=url, error=f"{type(exc).__name__}: {exc}"))
            continue
        scrapes.append(parse_metrics(response.text, url))
    return scrapes


class Traffic(NamedTuple):
    """What every replica counted since the step started, summed."""

    arms: dict[str, ArmCounts]
    shadow_dropped: float
    unreachable: list[str]

    def arm(self, arm: str, version: str) -> ArmCounts:
        return self.arms.get(arm_key(arm, version), ArmCounts())


def traffic_since(start: list[MetricsScrape], now: list[MetricsScrape]) -> Traffic:
    """Counts since `start`, per replica, then summed across replicas."""
    before = {s.url: s for s in start}
    arms: dict[str, ArmCounts] = {}
    dropped = 0.0
    unreachable = []
    for scrape in now:
        if scrape.error is not None:
            unreachable.append(f"{scrape.url}: {scrape.error}")
            continue
        earlier = before.get(scrape.url)
        for key, counts in scrape.arms.items():
            delta = counts.since(earlier.arms.get(key) if earlier and not earlier.error else None)
            arms[key] = arms[key].plus(delta) if key in arms else delta
        base = earlier.shadow_dropped if earlier and not earlier.error else 0.0
        dropped += scrape.shadow_dropped - base if scrape.shadow_dropped >= base else 0.0
    return Traffic(arms, dropped, unreachable)


# --- the prediction log -------------------------------------------------------------------


class ArmRows(NamedTuple):
    """The logged rows of the champion and of the challenger's arm since the step started."""

    champion: LogRead
    challenger: LogRead


def _subset(read: LogRead, mask: pd.Series) -> LogRead:
    rows = read.rows.loc[mask].reset_index(drop=True)
    return LogRead(rows, read.features.loc[mask].reset_index(drop=True))


def log_arms(read: LogRead, mode: str, champion_version: str, challenger_version: str) -> ArmRows:
    """Split one model's rows by arm: the `arm` column where the service wrote it, else from
    source and version (shadow rows are source `shadow`; canary rows the challenger's version)."""
    rows = read.rows
    derived = np.where(
        rows["source"].astype(str) == "shadow",
        "shadow",
        np.where(
            rows["model_version"].astype(str) == challenger_version,
            "challenger",
            np.where(rows["model_version"].astype(str) == champion_version, "champion", "other"),
        ),
    )
    arm = pd.Series(derived, index=rows.index)
    if "arm" in rows.columns:
        arm = rows["arm"].where(rows["arm"].notna(), arm).astype(str)
    wanted = "shadow" if mode == "shadow" else "challenger"
    challenger = arm.eq(wanted) & rows["model_version"].astype(str).eq(challenger_version)
    champion = arm.eq("champion") & rows["model_version"].astype(str).eq(champion_version)
    return ArmRows(_subset(read, champion), _subset(read, challenger))


def read_arms(
    model_name: str,
    mode: str,
    champion_version: str,
    challenger_version: str,
    since: float,
    log_url: str | None,
    log_dir: Path,
) -> ArmRows:
    """Both arms' rows logged after `since` (online and shadow sources only)."""
    read = read_model_log(model_name, log_url, log_dir, since=since, sources=("online", "shadow"))
    return log_arms(read, mode, champion_version, challenger_version)


# --- rules --------------------------------------------------------------------------------


class RuleResult(BaseModel):
    """One rule of a step's gate: its status and what was seen against what was allowed."""

    rule: str
    status: RuleStatus
    observed: str = "-"
    threshold: str = "-"
    detail: str = ""


class ArmSummary(BaseModel):
    """What the evidence holds about one arm."""

    arm: str
    version: str
    requests: float
    errors: float
    error_rate: float | None
    p99_seconds: float | None
    logged_rows: int
    labelled_rows: int


class StepEvidence(BaseModel):
    """Everything one look at a step saw, and the rules it decided."""

    model_name: str
    step: str
    mode: str
    share: float
    champion_version: str
    challenger_version: str
    elapsed_seconds: float
    held: bool = Field(description="the step's hold (time and requests) is over")
    arms: list[ArmSummary]
    shadow_dropped: float = 0.0
    unreachable: list[str] = Field(default_factory=list)
    rules: list[RuleResult]
    aborted: bool = Field(default=False, description="the rollout was cleared by someone else")
    looked_at: float = Field(default_factory=time.time)

    @property
    def verdict(self) -> Verdict:
        """`breach` at the first breach; `pass` once held with nothing waiting."""
        statuses = {r.status for r in self.rules}
        if "breach" in statuses:
            return "breach"
        if "waiting" in statuses or not self.held:
            return "waiting"
        return "pass"

    @property
    def breaches(self) -> list[RuleResult]:
        return [r for r in self.rules if r.status == "breach"]


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.1f} ms"
    if unit == "%":
        return f"{value:.1%}"
    return f"{value:.4g}"


def error_rule(challenger: ArmCounts, thresholds: RolloutThresholds) -> RuleResult:
    """The challenger arm's share of failed requests."""
    threshold = f"<= {_fmt(thresholds.max_error_rate, '%')}"
    if challenger.requests < thresholds.min_requests:
        detail = f"{challenger.requests:g} of {thresholds.min_requests} requests"
        return RuleResult(rule="error rate", status="waiting", threshold=threshold, detail=detail)
    rate = challenger.error_rate or 0.0
    status: RuleStatus = "breach" if rate > thresholds.max_error_rate else "pass"
    observed = f"{_fmt(rate, '%')} ({challenger.errors:g}/{challenger.requests:g})"
    return RuleResult(rule="error rate", status=status, observed=observed, threshold=threshold)


def latency_rule(
    challenger: ArmCounts, champion: ArmCounts, thresholds: RolloutThresholds
) -> RuleResult:
    """The challenger arm's p99 scoring time against the champion's (and an absolute bound)."""
    name = "latency p99"
    need = thresholds.min_requests
    if challenger.requests < need or champion.requests < need:
        detail = f"challenger {challenger.requests:g}, champion {champion.requests:g} of {need}"
        return RuleResult(rule=name, status="waiting", detail=detail)
    ours, theirs = challenger.quantile(0.99), champion.quantile(0.99)
    if ours is None or theirs is None:
        return RuleResult(rule=name, status="waiting", detail="no scoring-time histogram yet")
    bound = theirs * thresholds.max_latency_p99_ratio + thresholds.latency_slack_seconds
    if thresholds.max_latency_p99_seconds is not None:
        bound = min(bound, thresholds.max_latency_p99_seconds)
    status: RuleStatus = "breach" if ours > bound else "pass"
    return RuleResult(
        rule=name,
        status=status,
        observed=f"{_fmt(ours, 's')} (champion {_fmt(theirs, 's')})",
        threshold=f"<= {_fmt(bound, 's')}",
    )


def paired_rows(arms: ArmRows) -> pd.DataFrame:
    """Shadow rows beside the champion's answer to the same request and row."""
    keys = ["request_id", "row_index"]
    ours = arms.challenger.rows[[*keys, "prediction", "label"]]
    theirs = arms.champion.rows[[*keys, "prediction"]]
    return ours.merge(theirs, on=keys, suffixes=("", "_champion")).drop_duplicates(keys)


def agreement_rule(
    paired: pd.DataFrame, task: TaskType, thresholds: RolloutThresholds
) -> RuleResult:
    """Shadow: the share of rows whose answer agrees with the champion's (equal class, or a
    relative difference within `agreement_tolerance`, absolute below 1)."""
    threshold = f">= {_fmt(thresholds.min_agreement, '%')}"
    if len(paired) < thresholds.min_rows:
        detail = f"{len(paired)} of {thresholds.min_rows} paired rows"
        return RuleResult(rule="agreement", status="waiting", threshold=threshold, detail=detail)
    if task == TaskType.classification:
        agree = paired["prediction"].astype(str) == paired["prediction_champion"].astype(str)
    else:
        ours = pd.to_numeric(paired["prediction"], errors="coerce")
        theirs = pd.to_numeric(paired["prediction_champion"], errors="coerce")
        scale = np.maximum(theirs.abs(), 1.0)
        agree = (ours - theirs).abs() <= thresholds.agreement_tolerance * scale
    share = float(agree.mean())
    status: RuleStatus = "breach" if share < thresholds.min_agreement else "pass"
    observed = f"{_fmt(share, '%')} of {len(paired)} rows"
    return RuleResult(rule="agreement", status=status, observed=observed, threshold=threshold)


def prediction_shift(
    reference: pd.Series, current: pd.Series, task: TaskType, thresholds: RolloutThresholds
) -> RuleResult:
    """Evidently's drift test of the challenger's predictions against the champion's
    (Kolmogorov-Smirnov, chi-square for classes, at p < 0.01 unless configured), read through
    the project's Evidently adapter (`monitoring.drift.column_drift`)."""
    classes = task == TaskType.classification
    method = thresholds.prediction_drift_method or ("chisquare" if classes else "ks")
    metric = ValueDrift(
        column=PREDICTION, method=method, threshold=thresholds.prediction_drift_threshold
    )
    definition = DataDefinition(
        **(
            {"categorical_columns": [PREDICTION]}
            if classes
            else {"numerical_columns": [PREDICTION]}
        )
    )
    frames = [
        pd.DataFrame(
            {PREDICTION: (v.astype(str) if classes else pd.to_numeric(v, errors="coerce"))}
        )
        for v in (current, reference)
    ]
    snapshot = Report([metric], include_tests=True).run(
        Dataset.from_pandas(frames[0], data_definition=definition),
        Dataset.from_pandas(frames[1], data_definition=definition),
    )
    drift = column_drift(PREDICTION, snapshot.context.get_metric_result(metric))
    return RuleResult(
        rule="prediction drift",
        status="breach" if drift.drifted else "pass",
        observed=f"{drift.method} {_fmt(drift.score)}",
        threshold=f"{drift.method} threshold {_fmt(drift.threshold)}",
        detail=f"{len(current)} challenger vs {len(reference)} champion rows",
    )


def drift_rules(
    arms: ArmRows, mode: str, config: PipelineConfig, thresholds: RolloutThresholds
) -> list[RuleResult]:
    """Evidently, the challenger's rows against the champion's: its predictions (all modes)
    and, where the arms answered different requests (canary, ab), its inputs (the monitoring
    drift report with the config's `monitoring:` method and thresholds)."""
    names = ["prediction drift"] if thresholds.prediction_drift else []
    if mode != "shadow":
        names.append("input drift")
    if not names:
        return []
    have = min(len(arms.champion.rows), len(arms.challenger.rows))
    if have < thresholds.min_rows:
        detail = (
            f"challenger {len(arms.challenger.rows)}, champion {len(arms.champion.rows)} "
            f"of {thresholds.min_rows} rows"
        )
        return [RuleResult(rule=n, status="waiting", detail=detail) for n in names]
    rules = []
    if thresholds.prediction_drift:
        rules.append(
            prediction_shift(
                arms.champion.rows["prediction"],
                arms.challenger.rows["prediction"],
                config.task,
                thresholds,
            )
        )
    if mode != "shadow":
        found = compute_drift(arms.champion.features, arms.challenger.features, config, [], {})
        drifted = [c.column for c in found.report.columns if c.drifted]
        share = found.report.drifted_share
        rules.append(
            RuleResult(
                rule="input drift",
                status="breach" if share >= thresholds.max_drift_share else "pass",
                observed=f"{_fmt(share, '%')} of features",
                threshold=f"< {_fmt(thresholds.max_drift_share, '%')}",
                detail=", ".join(drifted),
            )
        )
    return rules


def _losses(frame: pd.DataFrame, prediction: str, task: TaskType) -> pd.Series:
    if task == TaskType.classification:
        return (frame[prediction].astype(str) != frame["label"].astype(str)).astype(float)
    label = pd.to_numeric(frame["label"], errors="coerce")
    return (pd.to_numeric(frame[prediction], errors="coerce") - label).abs()


def labelled_rule(
    arms: ArmRows, paired: pd.DataFrame | None, task: TaskType, thresholds: RolloutThresholds
) -> RuleResult:
    """Labels: is the challenger worse than the champion? One-sided tests on per-row loss
    (absolute error, or a miss): shadow rows are paired (Wilcoxon signed-rank; McNemar's exact
    binomial test for classes), canary rows are not (Mann-Whitney U; Fisher's exact test)."""
    name, alpha = "labelled metric", thresholds.significance
    kind = "mean miss rate" if task == TaskType.classification else "mean absolute error"
    if paired is not None:
        both = paired[paired["label"].notna()]
        ours, theirs = _losses(both, "prediction", task), _losses(both, "prediction_champion", task)
        count = len(both)
    else:
        mine = arms.challenger.rows[arms.challenger.rows["label"].notna()]
        other = arms.champion.rows[arms.champion.rows["label"].notna()]
        ours, theirs = _losses(mine, "prediction", task), _losses(other, "prediction", task)
        count = min(len(mine), len(other))
    if count < thresholds.min_labels:
        status: RuleStatus = "waiting" if thresholds.require_labels else "skipped"
        detail = f"{count} of {thresholds.min_labels} labelled rows"
        return RuleResult(rule=name, status=status, detail=detail)
    pvalue = _worse_pvalue(ours, theirs, paired is not None, task)
    status = "breach" if pvalue < alpha else "pass"
    return RuleResult(
        rule=name,
        status=status,
        observed=f"{kind} {_fmt(float(ours.mean()))} vs {_fmt(float(theirs.mean()))}, "
        f"p={pvalue:.3g}",
        threshold=f"p >= {alpha:g} (challenger worse)",
        detail=f"{count} labelled rows",
    )


def _worse_pvalue(ours: pd.Series, theirs: pd.Series, paired: bool, task: TaskType) -> float:
    """p-value of "the challenger's loss is higher" (1.0 when nothing differs)."""
    if task == TaskType.classification:
        if paired:
            worse = int(((ours > 0) & (theirs == 0)).sum())
            better = int(((ours == 0) & (theirs > 0)).sum())
            if worse + better == 0:
                return 1.0
            return float(stats.binomtest(worse, worse + better, 0.5, alternative="greater").pvalue)
        table = [
            [int(ours.sum()), int(len(ours) - ours.sum())],
            [int(theirs.sum()), int(len(theirs) - theirs.sum())],
        ]
        return float(stats.fisher_exact(table, alternative="greater").pvalue)
    if paired:
        difference = (ours - theirs).to_numpy()
        if not np.any(difference):
            return 1.0
        return float(stats.wilcoxon(difference, alternative="greater").pvalue)
    return float(stats.mannwhitneyu(ours, theirs, alternative="greater").pvalue)


# --- the step's decision ------------------------------------------------------------------


def _summary(arm: str, version: str, counts: ArmCounts, rows: LogRead) -> ArmSummary:
    return ArmSummary(
        arm=arm,
        version=version,
        requests=counts.requests,
        errors=counts.errors,
        error_rate=counts.error_rate,
        p99_seconds=counts.quantile(0.99),
        logged_rows=len(rows.rows),
        labelled_rows=int(rows.rows["label"].notna().sum()),
    )


def judge_step(
    config: PipelineConfig,
    step: RolloutStep,
    champion_version: str,
    challenger_version: str,
    traffic: Traffic,
    arms: ArmRows,
    elapsed_seconds: float,
) -> StepEvidence:
    """The gate of one look at a step: the cheap rules at every look (a breach rolls back at
    once), the drift and label tests once the step's hold is over."""
    thresholds = config.rollout.thresholds
    arm = "shadow" if step.mode == "shadow" else "challenger"
    ours = traffic.arm(arm, challenger_version)
    theirs = traffic.arm("champion", champion_version)
    seen = max(ours.requests, float(arms.challenger.rows["request_id"].nunique()))
    held = elapsed_seconds >= (step.hold_seconds or 0.0) and seen >= (step.hold_requests or 0)
    rules = [error_rule(ours, thresholds), latency_rule(ours, theirs, thresholds)]
    paired = paired_rows(arms) if step.mode == "shadow" else None
    if paired is not None:
        rules.append(agreement_rule(paired, config.task, thresholds))
    if traffic.unreachable:
        rules.append(
            RuleResult(rule="metrics", status="waiting", detail="; ".join(traffic.unreachable))
        )
    if held and not any(r.status == "breach" for r in rules):
        rules += drift_rules(arms, step.mode, config, thresholds)
        rules.append(labelled_rule(arms, paired, config.task, thresholds))
    return StepEvidence(
        model_name=config.registered_model_name,
        step=step.label,
        mode=step.mode,
        share=step.share,
        champion_version=champion_version,
        challenger_version=challenger_version,
        elapsed_seconds=elapsed_seconds,
        held=held,
        arms=[
            _summary("champion", champion_version, theirs, arms.champion),
            _summary(arm, challenger_version, ours, arms.challenger),
        ],
        shadow_dropped=traffic.shadow_dropped,
        unreachable=traffic.unreachable,
        rules=rules,
    )


def timed_out(evidence: StepEvidence, timeout_seconds: float) -> StepEvidence:
    """The last look of a step that could not decide in time: its waiting rules breach."""
    rules = [
        r.model_copy(
            update={
                "status": "breach",
                "detail": f"undecided after {timeout_seconds:g} s ({r.detail or 'no evidence'})",
            }
        )
        if r.status == "waiting"
        else r
        for r in evidence.rules
    ]
    if not evidence.held and not any(r.status == "breach" for r in rules):
        rules.append(
            RuleResult(
                rule="hold",
                status="breach",
                detail=f"the step's hold did not complete within {timeout_seconds:g} s",
            )
        )
    return evidence.model_copy(update={"rules": rules})


def evidence_markdown(evidence: StepEvidence, outcome: str) -> str:
    """One step's evidence for the Prefect UI: the arms, then every rule."""
    lines = [
        f"# Rollout of {evidence.model_name} v{evidence.challenger_version}: "
        f"step {evidence.step} ({outcome})",
        "",
        f"Champion v{evidence.champion_version}; mode {evidence.mode}, challenger share "
        f"{evidence.share:.0%}; {evidence.elapsed_seconds:.0f} s into the step; "
        f"shadow requests dropped: {evidence.shadow_dropped:g}.",
        "",
        "| arm | version | requests | errors | error rate | p99 | logged rows | labelled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a in evidence.arms:
        lines.append(
            f"| {a.arm} | {a.version} | {a.requests:g} | {a.errors:g} | "
            f"{_fmt(a.error_rate, '%')} | {_fmt(a.p99_seconds, 's')} | {a.logged_rows} | "
            f"{a.labelled_rows} |"
        )
    lines += ["", "| rule | status | observed | threshold | detail |", "|---|---|---|---|---|"]
    for r in evidence.rules:
        detail = r.detail.replace("|", "/")
        lines.append(f"| {r.rule} | {r.status} | {r.observed} | {r.threshold} | {detail} |")
    if evidence.unreachable:
        lines += ["", "Unreachable replicas: " + "; ".join(evidence.unreachable)]
    return "\n".join(lines)


# --- the plan and the record ----------------------------------------------------------------

ROLLOUTS_FOLDER = "rollouts"
LATEST_EVIDENCE = "latest.json"
Outcome = Literal["promoted", "rolled back", "aborted", "rejected", "superseded"]


class RolloutPlan(BaseModel):
    """Who is rolled out against whom, by which run, with which config."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    challenger_version: str
    champion_version: str
    config_path: str
    flow_run_id: str
    reason: str = "manual"


class RolloutResult(BaseModel):
    """How a rollout ended and the evidence of every step it ran."""

    plan: RolloutPlan
    outcome: Outcome
    reason: str
    steps: list[StepEvidence] = Field(default_factory=list)
    champion_version: str = Field(description="the champion when the rollout ended")


def plan_rollout(
    client: MlflowClient,
    name: str,
    version: str | None,
    config_path: str,
    flow_run_id: str,
    reason: str = "manual",
) -> RolloutPlan:
    """The challenger (`version`, or the one `challenger` points at) against today's champion;
    a RolloutError names what is missing."""
    champion = version_by_alias(client, name, CHAMPION)
    if champion is None:
        raise RolloutError(
            f"{name} has no champion: promote a first version instead of rolling out"
        )
    challenger = version or version_by_alias(client, name, CHALLENGER)
    if challenger is None:
        raise RolloutError(f"{name} has no {CHALLENGER!r} alias and no version was given")
    try:
        client.get_model_version(name, challenger)
    except MlflowException as exc:
        raise RolloutError(f"{name} has no version {challenger!r}") from exc
    if challenger == champion:
        raise RolloutError(f"{name} v{challenger} is already the champion: nothing to roll out")
    return RolloutPlan(
        model_name=name,
        challenger_version=str(challenger),
        champion_version=champion,
        config_path=config_path,
        flow_run_id=flow_run_id,
        reason=reason,
    )


def still_ours(state: RolloutState | None, plan: RolloutPlan) -> bool:
    """The registry's rollout is still this run's (not aborted, not replaced by another run)."""
    return (
        state is not None
        and state.version == plan.challenger_version
        and state.flow_run_id == plan.flow_run_id
    )


def evidence_folder(artifact_root: Path, model_name: str) -> Path:
    return confined(artifact_root / ROLLOUTS_FOLDER, model_name, field="registered_model_name")


def save_evidence(artifact_root: Path, evidence: StepEvidence, outcome: str) -> Path:
    """The last look at a step, as JSON where `mlops rollout status` finds it."""
    folder = evidence_folder(artifact_root, evidence.model_name)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"outcome": outcome, "evidence": evidence.model_dump(mode="json")}
    target = folder / LATEST_EVIDENCE
    spare = folder / f".{LATEST_EVIDENCE}.{os.getpid()}"
    spare.write_text(json.dumps(record, indent=2))
    spare.replace(target)
    return target


def latest_evidence(artifact_root: Path, model_name: str) -> tuple[str, StepEvidence] | None:
    """The outcome and evidence of the last step a rollout of `model_name` looked at."""
    path = evidence_folder(artifact_root, model_name) / LATEST_EVIDENCE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return str(record["outcome"]), StepEvidence.model_validate(record["evidence"])
