from prefect_mlops.config import GateConfig
from prefect_mlops.gate import decide, decide_promotion
from prefect_mlops.results import (
    ChampionScore,
    ComparedRows,
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


ROWS = ComparedRows(rows=120, of_holdout=400, basis="later than champion v3's training end")


def champion(rmse: float, challenger: float) -> ChampionScore:
    """Champion v3 and the challenger, both scored on the same 120 unseen rows."""
    return ChampionScore(
        version="3",
        metrics={"rmse": rmse},
        challenger_metrics={"rmse": challenger},
        compared_on=ROWS,
    )


def test_every_violated_rule_is_listed() -> None:
    broken_load = GateCheck(rule="loads", passed=False, detail="boom")
    decision = decide(evaluation(150, r2=0.1), None, broken_load, GATE)
    assert not decision.passed
    assert [c.rule for c in decision.violations] == ["r2 >= 0.6", "rmse <= 100.0", "loads"]


def test_within_tolerance_of_champion_is_blessed() -> None:
    assert decide(evaluation(52.0), champion(50.0, 52.0), LOADS, GATE).passed


def test_worse_than_champion_beyond_tolerance_is_rejected() -> None:
    decision = decide(evaluation(53.0), champion(50.0, 53.0), LOADS, GATE)
    assert [c.detail for c in decision.violations] == [
        "challenger 53 vs champion v3 50 on 120 of 400 holdout rows"
    ]


def test_champion_is_compared_on_the_unseen_rows_not_the_whole_holdout() -> None:
    # Better on the whole holdout (40), worse on the rows the champion never saw (60 vs 50).
    decision = decide(evaluation(40.0), champion(50.0, 60.0), LOADS, GATE)
    assert not decision.passed
    assert not decide_promotion(evaluation(40.0), champion(50.0, 60.0), PASSED, "4", GATE).promote


def test_no_rows_neither_trained_on_blesses_but_waits_for_a_person() -> None:
    reason = "only 0 of the challenger's 60 holdout rows are later than champion v3's training end"
    score = ChampionScore(version="3", not_comparable=reason)
    decision = decide(evaluation(60.0), score, LOADS, GATE)
    assert decision.passed
    assert decision.champion == score
    promotion = decide_promotion(evaluation(10.0), score, PASSED, "4", GATE)
    assert not promotion.promote
    assert reason in promotion.reason
    assert "`mlops promote 4`" in promotion.reason
    assert "no comparable champion" not in promotion.reason


def test_a_champion_score_not_on_unseen_rows_is_no_comparison() -> None:
    whole_holdout = ChampionScore(version="3", metrics={"rmse": 50.0})
    promotion = decide_promotion(evaluation(10.0), whole_holdout, PASSED, "4", GATE)
    assert not promotion.promote
    assert "not scored on the same rows" in promotion.reason


def test_champion_that_cannot_score_does_not_block() -> None:
    champion = ChampionScore(version="3", error="KeyError: 'new_column'")
    assert decide(evaluation(60.0), champion, LOADS, GATE).passed


def test_only_a_strictly_better_model_is_promoted() -> None:
    assert not decide_promotion(evaluation(50.0), champion(50.0, 50.0), PASSED, "4", GATE).promote
    better = decide_promotion(evaluation(49.0), champion(50.0, 49.0), PASSED, "4", GATE)
    assert better.promote
    assert better.reason == "rmse 49 beats champion v3 (50) on 120 of 400 holdout rows"


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
    decision = decide_promotion(evaluation(10.0), champion(50.0, 10.0), WARNED, "4", GATE)
    assert not decision.promote
    assert "validation failed" in decision.reason
    assert "1 of 12" in decision.reason
    assert "`mlops promote 4`" in decision.reason


def test_failed_validation_waits_for_a_person_without_a_champion_too() -> None:
    decision = decide_promotion(evaluation(10.0), None, WARNED, "1", GATE)
    assert not decision.promote
    assert "`mlops promote 1`" in decision.reason
