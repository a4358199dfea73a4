from prefect_mlops.config import GateConfig
from prefect_mlops.gate import decide, decide_promotion
from prefect_mlops.results import ChampionScore, Evaluation, GateCheck

GATE = GateConfig(
    primary_metric="rmse",
    thresholds={"r2": {"min": 0.6}, "rmse": {"max": 100}},
    champion_tolerance=0.05,
)
LOADS = GateCheck(rule="loads", passed=True, detail="ok")


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
    assert not decide_promotion(evaluation(50.0), champion, GATE).promote
    assert decide_promotion(evaluation(49.0), champion, GATE).promote
    assert decide_promotion(evaluation(70.0), None, GATE).promote
