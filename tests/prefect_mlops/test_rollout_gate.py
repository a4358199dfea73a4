"""The rollout gate on real /metrics text (the service's own metrics class) and real log files."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from prefect_mlops import rollout_gate as gate
from prefect_mlops.config import PipelineConfig, RolloutStep, parse_config
from prefect_mlops.errors import ConfigError
from prefect_mlops.prediction_log import FeedbackRecord, ParquetStore, PredictionRecord
from serving.metrics import ServiceMetrics

MODEL = "demand"
CHAMPION, CHALLENGER = "1", "2"


def config(**rollout: object) -> PipelineConfig:
    thresholds = {"min_requests": 20, "min_rows": 20, "min_labels": 20}
    raw = {
        "name": MODEL,
        "task": "regression",
        "target": "demand",
        "source": {"kind": "csv", "path": "unused.csv"},
        "features": ["temp", "hr"],
        "candidates": [{"name": "linear", "estimator": "linear"}],
        "gate": {"primary_metric": "rmse"},
        "validation": {"suite": MODEL},
        "registered_model_name": MODEL,
        "rollout": {"enabled": True, "thresholds": thresholds, **rollout},
    }
    return parse_config(raw)


def served(
    champion_seconds: list[float],
    challenger_seconds: list[float],
    arm: str = "shadow",
    challenger_errors: int = 0,
) -> ServiceMetrics:
    """The service's metrics after these scoring times (the service's own classes)."""
    metrics = ServiceMetrics()
    for seconds in champion_seconds:
        metrics.arm_requests.labels("champion", CHAMPION, "ok").inc()
        metrics.arm_seconds.labels("champion", CHAMPION).observe(seconds)
    for i, seconds in enumerate(challenger_seconds):
        outcome = "error" if i < challenger_errors else "ok"
        metrics.arm_requests.labels(arm, CHALLENGER, outcome).inc()
        metrics.arm_seconds.labels(arm, CHALLENGER).observe(seconds)
    return metrics


def scrape(metrics: ServiceMetrics, url: str = "http://a") -> gate.MetricsScrape:
    return gate.parse_metrics(metrics.render().decode(), url)


def test_p99_is_interpolated_from_the_service_histogram_buckets() -> None:
    metrics = served([0.002] * 99 + [0.2], [])
    counts = scrape(metrics).arms[gate.arm_key("champion", CHAMPION)]
    assert counts.requests == 100
    # rank 99 of 100 falls at the top of the (0.001, 0.0025] bucket
    assert counts.quantile(0.99) == pytest.approx(0.0025)
    assert counts.quantile(0.995) == pytest.approx(0.1 + (0.25 - 0.1) * 0.5)
    assert gate.histogram_quantile(0.99, {math.inf: 0.0}) is None


def test_traffic_counts_since_the_step_began_and_survives_a_replica_restart() -> None:
    before = scrape(served([0.002] * 10, [0.002] * 5), "http://a")
    later = scrape(served([0.002] * 30, [0.002] * 25, challenger_errors=2), "http://a")
    restarted = scrape(served([0.002] * 4, [0.002] * 3), "http://b")
    start_b = scrape(served([0.002] * 50, [0.002] * 50), "http://b")
    traffic = gate.traffic_since([before, start_b], [later, restarted])
    shadow = traffic.arm("shadow", CHALLENGER)
    assert shadow.requests == 20 + 3  # a's difference, b's counters from zero
    assert shadow.errors == 2
    assert traffic.arm("champion", CHAMPION).requests == 20 + 4


def test_an_unreachable_replica_keeps_the_step_waiting() -> None:
    down = gate.scrape_metrics(["http://127.0.0.1:9"], timeout=1)
    assert down[0].error
    traffic = gate.traffic_since([], down)
    assert traffic.unreachable and traffic.arms == {}


def log_rows(
    root: Path,
    champion: np.ndarray,
    challenger: np.ndarray,
    mode: str = "shadow",
    labels: np.ndarray | None = None,
    seed: int = 0,
) -> None:
    """A real Parquet log: one row per request, the champion's answer and the challenger's
    (a shadow copy of the same request, or another request in canary mode), labels via
    /feedback's records."""
    rng = np.random.default_rng(seed)
    store = ParquetStore(root)
    now = time.time()
    records, feedback = [], []
    for i, (ours, theirs) in enumerate(zip(challenger, champion, strict=True)):
        columns = {"temp": [float(rng.normal(20, 5))], "hr": [int(rng.integers(0, 24))]}
        rid = f"r{i}"
        records.append(
            PredictionRecord(rid, now, MODEL, CHAMPION, columns, np.array([theirs]), None)
        )
        if mode == "shadow":
            records.append(
                PredictionRecord(
                    rid,
                    now,
                    MODEL,
                    CHALLENGER,
                    columns,
                    np.array([ours]),
                    None,
                    0,
                    "shadow",
                    "shadow",
                )
            )
        else:
            records.append(
                PredictionRecord(
                    f"c{i}",
                    now,
                    MODEL,
                    CHALLENGER,
                    columns,
                    np.array([ours]),
                    None,
                    0,
                    "online",
                    "challenger",
                )
            )
        if labels is not None:
            feedback.append(FeedbackRecord(rid, 0, float(labels[i]), now, MODEL))
            if mode != "shadow":
                feedback.append(FeedbackRecord(f"c{i}", 0, float(labels[i]), now, MODEL))
    store.append_predictions(records)
    if feedback:
        store.append_feedback(feedback)


def judge(
    root: Path, step: RolloutStep, metrics: ServiceMetrics, cfg: PipelineConfig | None = None
) -> gate.StepEvidence:
    cfg = cfg or config()
    arms = gate.read_arms(MODEL, step.mode, CHAMPION, CHALLENGER, time.time() - 60, None, root)
    traffic = gate.traffic_since([], [scrape(metrics)])
    return gate.judge_step(cfg, step, CHAMPION, CHALLENGER, traffic, arms, elapsed_seconds=5)


SHADOW = RolloutStep(mode="shadow", hold_seconds=1)
CANARY = RolloutStep(mode="canary", share=0.5, hold_seconds=1)


def test_a_constant_shadow_breaches_agreement_on_paired_log_rows(tmp_path: Path) -> None:
    champion = np.linspace(20, 400, 60)
    log_rows(tmp_path, champion, np.full(60, champion.mean()))
    evidence = judge(tmp_path, SHADOW, served([0.002] * 60, [0.002] * 60))
    assert evidence.verdict == "breach"
    assert [r.rule for r in evidence.breaches] == ["agreement"]
    assert "of 60 rows" in evidence.breaches[0].observed


def test_a_good_shadow_passes_every_rule_after_its_hold(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    champion = rng.uniform(20, 400, 80)
    log_rows(tmp_path, champion, champion * 1.01)
    evidence = judge(tmp_path, SHADOW, served([0.002] * 80, [0.0021] * 80))
    statuses = {r.rule: r.status for r in evidence.rules}
    assert evidence.verdict == "pass", statuses
    assert statuses["prediction drift"] == "pass"  # Evidently ran on both arms' predictions
    assert statuses["labelled metric"] == "skipped"  # no labels, and none required


def test_a_slow_shadow_breaches_the_latency_rule(tmp_path: Path) -> None:
    champion = np.linspace(20, 400, 40)
    log_rows(tmp_path, champion, champion)
    evidence = judge(tmp_path, SHADOW, served([0.002] * 40, [0.04] * 40))
    assert [r.rule for r in evidence.breaches] == ["latency p99"]
    assert "champion" in evidence.breaches[0].observed


def test_errors_of_the_challenger_arm_breach(tmp_path: Path) -> None:
    log_rows(tmp_path, np.ones(30), np.ones(30))
    metrics = served([0.002] * 30, [0.002] * 30, challenger_errors=3)
    evidence = judge(tmp_path, SHADOW, metrics)
    assert "error rate" in [r.rule for r in evidence.breaches]


def test_too_little_evidence_waits_and_a_timeout_turns_waiting_into_a_breach(
    tmp_path: Path,
) -> None:
    log_rows(tmp_path, np.ones(5), np.ones(5))
    evidence = judge(tmp_path, SHADOW, served([0.002] * 5, [0.002] * 5))
    assert evidence.verdict == "waiting"
    waiting = [r.rule for r in evidence.rules if r.status == "waiting"]
    assert waiting == ["error rate", "latency p99", "agreement", "prediction drift"]
    late = gate.timed_out(evidence, 30)
    assert late.verdict == "breach"
    assert all("undecided after 30 s" in r.detail for r in late.breaches)


def test_labels_showing_a_worse_canary_breach_the_one_sided_test(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    labels = rng.uniform(20, 400, 60)
    champion = labels + rng.normal(0, 5, 60)
    challenger = labels + rng.normal(0, 5, 60) + 30  # same spread, biased: shifted predictions
    log_rows(tmp_path, champion, challenger, mode="canary", labels=labels)
    cfg = config(
        thresholds={"min_requests": 20, "min_rows": 20, "min_labels": 20, "prediction_drift": False}
    )
    metrics = served([0.002] * 60, [0.002] * 60, arm="challenger")
    evidence = judge(tmp_path, CANARY, metrics, cfg)
    rules = {r.rule: r for r in evidence.rules}
    assert rules["labelled metric"].status == "breach", rules["labelled metric"]
    assert "p=" in rules["labelled metric"].observed
    assert rules["input drift"].status == "pass"  # same input distribution on both arms


def test_labels_required_keep_a_step_waiting_until_they_arrive(tmp_path: Path) -> None:
    champion = np.linspace(20, 400, 40)
    log_rows(tmp_path, champion, champion)
    thresholds = {"min_requests": 20, "min_rows": 20, "min_labels": 20, "require_labels": True}
    evidence = judge(
        tmp_path, SHADOW, served([0.002] * 40, [0.002] * 40), config(thresholds=thresholds)
    )
    assert evidence.verdict == "waiting"
    assert [r.rule for r in evidence.rules if r.status == "waiting"] == ["labelled metric"]


def test_evidence_is_saved_for_status_and_rendered_as_markdown(tmp_path: Path) -> None:
    log_rows(tmp_path / "log", np.ones(30), np.zeros(30))
    evidence = judge(tmp_path / "log", SHADOW, served([0.002] * 30, [0.002] * 30))
    gate.save_evidence(tmp_path / "artifacts", evidence, evidence.verdict)
    outcome, back = gate.latest_evidence(tmp_path / "artifacts", MODEL) or ("", None)
    assert outcome == "breach" and back == evidence
    text = gate.evidence_markdown(evidence, outcome)
    assert "| agreement | breach |" in text and "| shadow | 2 | 30 |" in text


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"steps": [{"mode": "ab", "share": 0.5, "hold_seconds": 5}]}, "needs rollout.key"),
        ({"steps": [{"mode": "shadow", "share": 0.2, "hold_seconds": 5}]}, "share must be 0"),
        ({"steps": [{"mode": "canary", "share": 0.1}]}, "hold_seconds and/or hold_requests"),
        ({"service_urls": ["localhost:8000"]}, "http(s) URLs"),
        ({"steps": [{"mode": "canary", "share": 0.1, "hold_seconds": 9999}]}, "step_timeout"),
    ],
)
def test_a_bad_rollout_section_is_an_error_naming_it(rollout: dict, message: str) -> None:
    with pytest.raises(ConfigError, match="rollout") as caught:
        config(**rollout)
    assert message in str(caught.value)


def test_the_default_plan_is_shadow_then_canaries_and_the_rollout_leaves_the_hash_alone() -> None:
    plain = config()
    assert [s.label for s in plain.rollout.steps] == ["shadow", "canary 10%", "canary 50%"]
    other = config(steps=[{"mode": "canary", "share": 0.2, "hold_seconds": 1}])
    assert plain.fingerprint() == other.fingerprint()
