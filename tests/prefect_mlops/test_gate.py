from prefect_mlops.config import GateConfig
from prefect_mlops.gate import decide, decide_promotion
from prefect_mlops.results import (
    ChampionScore,
    Evaluation,
    FailedExpectation,
    GateCheck,
    ValidationSummary,
)

GATE = GateConfig(
    primary_metric="rmse",
    thresholds={"r2": {"min": 0.6}, "rmse": {"max": 100}},
    champion_tolerance=0.05,
)
LOADS = GateCheck(rule="loads", passed=True, detail="ok")
PASSED = ValidationSummary(success=True, checkpoint="bikeshare.training", evaluated=12)
WARNED = ValidationSummary(
    success=False,
    checkpoint="bikeshare.training",
    evaluated=12,
    failed=[FailedExpectation(expectation="expect_column_to_exist", column="temp", observed="-")],
)


def evaluation(rmse: float, r2: float = 0.8) -> Evaluation:
    return Evaluation(metrics={"rmse": rmse, "mae": rmse / 2, "r2": r2})


def test_every_violated_rule_is_listed() -> None:
    broken_load = GateCheck(rule="loads", passed=False, detail="boom")
    decision = decide(evaluation(150, r2=0.1), None, broken_load, GATE)
    assert not decision.passed
    assert [c.rule for c in decision.violations] == ["r2 >= 0.6", "rmse <= 100.0", "loads"]


def test_within_tolerance_of_champion_is_blessed() -> None:
    champion = ChampionScore(version="3", metrics={"rmse": 50.0})
    assert decide(evaluation(52.0), champion, LOADS, GATE).passed


def test_worse_than_champion_beyond_tolerance_is_rejected() -> None:
    champion = ChampionScore(version="3", metrics={"rmse": 50.0})
    decision = decide(evaluation(53.0), champion, LOADS, GATE)
    assert [c.detail for c in decision.violations] == ["challenger 53 vs champion v3 50"]


def test_champion_that_cannot_score_does_not_block() -> None:
    champion = ChampionScore(version="3", error="KeyError: 'new_column'")
    assert decide(evaluation(60.0), champion, LOADS, GATE).passed


def test_only_a_strictly_better_model_is_promoted() -> None:
    champion = ChampionScore(version="3", metrics={"rmse": 50.0})
    assert not decide_promotion(evaluation(50.0), champion, PASSED, "4", GATE).promote
    assert decide_promotion(evaluation(49.0), champion, PASSED, "4", GATE).promote


def test_first_model_is_promoted_because_no_champion_exists() -> None:
    decision = decide_promotion(evaluation(70.0), None, PASSED, "1", GATE)
    assert decision.promote
    assert decision.reason.startswith("no comparable champion")


def test_champion_that_cannot_score_the_holdout_waits_for_a_person() -> None:
    champion = ChampionScore(version="3", error="KeyError: 'temp'")
    decision = decide_promotion(evaluation(10.0), champion, PASSED, "4", GATE)
    assert not decision.promote
    assert "champion v3 cannot score" in decision.reason
    assert "KeyError: 'temp'" in decision.reason
    assert "`mlops promote 4`" in decision.reason
    assert "no comparable champion" not in decision.reason


def test_failed_validation_under_warn_waits_for_a_person_even_when_better() -> None:
    champion = ChampionScore(version="3", metrics={"rmse": 50.0})
    decision = decide_promotion(evaluation(10.0), champion, WARNED, "4", GATE)
    assert not decision.promote
    assert "validation failed" in decision.reason
    assert "1 of 12" in decision.reason
    assert "`mlops promote 4`" in decision.reason


def test_failed_validation_waits_for_a_person_without_a_champion_too() -> None:
    decision = decide_promotion(evaluation(10.0), None, WARNED, "1", GATE)
    assert not decision.promote
    assert "`mlops promote 1`" in decision.reason
