"""`mlops serve` options: each defaults to its MLOPS_SERVE_* variable, the model comes from a
config or --model. Parsed by the real command, without starting uvicorn."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from prefect_mlops.cli import app
from prefect_mlops.errors import ConfigError
from serving.cli import served_model_name, serving_environment
from serving.settings import ServeSettings
from tests.conftest import BIKESHARE_CONFIG


def parsed(command: str, *args: str) -> dict:
    """The values `mlops COMMAND ARGS` would run with (environment variables included)."""
    group = typer.main.get_command(app)
    parent = group.make_context("mlops", [command, *args], resilient_parsing=True)
    sub = group.commands[command]
    return sub.make_context(command, list(args), parent=parent).params


def test_serve_honours_the_poll_interval_of_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_SERVE_POLL_SECONDS", "2")
    options = parsed("serve", "--model", "m")
    for key, value in serving_environment("m", options["alias"], options["poll_seconds"]).items():
        monkeypatch.setenv(key, value)
    assert ServeSettings().poll_seconds == 2.0


def test_serve_without_the_option_or_variable_keeps_the_service_default(monkeypatch) -> None:
    monkeypatch.delenv("MLOPS_SERVE_POLL_SECONDS", raising=False)
    options = parsed("serve", "--model", "m")
    assert options["poll_seconds"] is None and options["onnx"] is None
    assert serving_environment("m", options["alias"], options["poll_seconds"]) == {
        "MLOPS_SERVE_MODEL_NAME": "m"
    }


def test_an_option_on_the_command_line_beats_its_variable(monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_SERVE_POLL_SECONDS", "2")
    monkeypatch.setenv("MLOPS_SERVE_PORT", "9001")
    options = parsed("serve", "--model", "m", "--poll-seconds", "5")
    assert (options["poll_seconds"], options["port"]) == (5.0, 9001)


def test_every_command_option_reads_an_environment_variable(monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_MONITOR_HOURS", "6")
    monkeypatch.setenv("MLOPS_SCORE_CHUNK_ROWS", "123")
    monkeypatch.setenv("MLOPS_CONFIG", "configs/other.yaml")
    assert parsed("monitor")["hours"] == 6.0
    score = parsed("score", "--source", "a.csv", "--destination", "b.csv")
    assert score["chunk_rows"] == 123 and score["config"] == Path("configs/other.yaml")


def test_serve_takes_the_model_name_from_the_config() -> None:
    assert served_model_name(None, BIKESHARE_CONFIG) == "bikeshare-demand"
    # a typed --model beats $MLOPS_CONFIG; a typed --config beats $MLOPS_SERVE_MODEL_NAME
    assert served_model_name("other", BIKESHARE_CONFIG, frozenset({"model"})) == "other"
    assert served_model_name("other", BIKESHARE_CONFIG, frozenset({"config"})) == (
        "bikeshare-demand"
    )
    with pytest.raises(ConfigError, match=r"is not .*'s registered model 'bikeshare-demand'"):
        served_model_name("other", BIKESHARE_CONFIG, frozenset({"model", "config"}))
    with pytest.raises(ConfigError, match=r"--config PIPELINE\.yaml or --model NAME"):
        served_model_name(None, None)
