"""Reports a person reads: numbers rounded, params that wrap, MLflow pages linked when served."""

from __future__ import annotations

from prefect_mlops.reports import (
    leaderboard_markdown,
    mlflow_run_text,
    mlflow_run_url,
    mlflow_version_url,
    readable,
)
from prefect_mlops.results import CandidateScore, CandidateSpec


def score(params: dict, mean: float) -> CandidateScore:
    spec = CandidateSpec(name="random_forest", estimator="random_forest", params=params, index=0)
    return CandidateScore(
        spec=spec, metric="rmse", cv_mean=mean, cv_std=1.23456789, fit_seconds=4.26, run_id="r"
    )


def test_long_floats_are_cut_to_four_significant_digits() -> None:
    assert readable("rmse 57.110111780618396 better than 60.0") == "rmse 57.11 better than 60.0"
    assert readable("r2 = 0.77123456789, seed 42") == "r2 = 0.7712, seed 42"


def test_leaderboard_params_read_as_text_and_scores_are_rounded() -> None:
    table = leaderboard_markdown([score({"max_depth": 12, "max_features": 0.333333333}, 57.1101)])
    assert "| max_depth=12, max_features=0.3333 |" in table
    assert "57.11 ± 1.2" in table
    assert "{" not in table and "`" not in table  # no unbreakable code span of a dict


def test_candidate_title_names_family_and_params() -> None:
    spec = CandidateSpec(
        name="random_forest", estimator="random_forest", params={"max_depth": 12}, index=3
    )
    assert spec.title == "random_forest max_depth=12"


def test_mlflow_pages_are_linked_only_on_a_tracking_server() -> None:
    assert mlflow_run_url("http://127.0.0.1:5000/", "abc") == "http://127.0.0.1:5000/#/runs/abc"
    assert (
        mlflow_version_url("https://mlflow.example", "bike share", "3")
        == "https://mlflow.example/#/models/bike%20share/versions/3"
    )
    assert mlflow_run_url("sqlite:///m.db", "abc") is None
    assert mlflow_run_text("sqlite:///m.db", "abc").startswith("run `abc` in `sqlite:///m.db`")
    assert mlflow_run_text("http://h:5000", "abc") == "[run abc](http://h:5000/#/runs/abc)"
