"""Config problems that need no data are all found, in one message, before anything runs."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefect_mlops.cli import app
from prefect_mlops.errors import ConfigError
from prefect_mlops.preflight import check_servers, load_checked_config, server_problems
from prefect_mlops.settings import Settings
from tests.conftest import fast_config_dict, write_config


def test_a_checked_config_loads(fast_config_path: Path, settings: Settings):
    assert load_checked_config(fast_config_path, settings).name


def test_every_problem_is_named_in_one_error(tmp_path: Path, settings: Settings):
    raw = fast_config_dict()
    raw["candidates"] = [
        {"name": "mystery", "estimator": "deep_forest"},
        {"name": "ridge", "estimator": "linear", "params": {"depth": 3}},
    ]
    raw["source"]["path"] = str(tmp_path / "absent.csv")
    raw["validation"]["suite"] = "nosuch"
    path = write_config(tmp_path / "bad.yaml", raw)
    with pytest.raises(ConfigError) as caught:
        load_checked_config(path, settings)
    message = str(caught.value)
    assert "candidates[mystery]" in message and "deep_forest" in message
    assert "candidates[ridge]" in message and "depth" in message
    assert "source.path" in message and "absent.csv" in message
    assert "validation.suite" in message and "nosuch.training" in message


def test_an_artifact_root_whose_filesystem_is_not_installed_is_named(
    fast_config_path: Path, settings: Settings
):
    elsewhere = settings.model_copy(update={"artifact_root": "nosuchfs://bucket/mlops"})
    with pytest.raises(ConfigError, match=r"artifact root nosuchfs://bucket/mlops: no filesystem"):
        load_checked_config(fast_config_path, elsewhere)
    s3 = settings.model_copy(update={"artifact_root": "s3://bucket/mlops"})
    assert load_checked_config(fast_config_path, s3).name  # s3fs is installed (the s3 extra)
    proxied = settings.model_copy(update={"artifact_root": "mlflow-artifacts:/mlops"})
    with pytest.raises(ConfigError, match="needs MLFLOW_TRACKING_URI to be that server"):
        load_checked_config(fast_config_path, proxied)  # the settings' tracking store is SQLite


def test_scoring_runs_do_not_need_the_training_source(tmp_path: Path, settings: Settings):
    raw = fast_config_dict()
    raw["source"]["path"] = str(tmp_path / "landing" / "not-yet.csv")
    path = write_config(tmp_path / "scoring.yaml", raw)
    assert load_checked_config(path, settings, "scoring").name


def test_mlops_train_refuses_a_bad_config_before_starting_prefect(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    raw = fast_config_dict()
    raw["candidates"] = [{"name": "mystery", "estimator": "deep_forest"}]
    path = write_config(tmp_path / "bad.yaml", raw)
    monkeypatch.delitem(sys.modules, "flows.training", raising=False)  # put back afterwards
    result = CliRunner().invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == 1
    assert "deep_forest" in result.output
    assert "flows.training" not in sys.modules  # the flow (and its server) never started


def test_mlops_train_names_a_yaml_syntax_error(tmp_path: Path, settings: Settings):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ntask: [regression\n")
    result = CliRunner().invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == 1
    assert "not valid YAML" in result.output


def test_mlops_check_reports_ok(fast_config_path: Path, settings: Settings):
    result = CliRunner().invoke(app, ["check", "--config", str(fast_config_path)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_mlops_train_names_an_unreachable_prefect_server(
    fast_config_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    url = f"http://127.0.0.1:{_closed_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    monkeypatch.delitem(sys.modules, "flows.training", raising=False)  # put back afterwards
    result = CliRunner().invoke(app, ["train", "--config", str(fast_config_path)])
    assert result.exit_code == 1
    assert f"PREFECT_API_URL={url} does not answer" in result.output
    assert "mlops up" in result.output
    assert "flows.training" not in sys.modules  # nothing started against the dead server


def test_an_unreachable_mlflow_server_is_named(settings: Settings):
    url = f"http://127.0.0.1:{_closed_port()}"
    problems = server_problems(settings.model_copy(update={"tracking_uri": url}), timeout=2)
    assert problems == [
        f"MLFLOW_TRACKING_URI={url} does not answer ([Errno 111] Connection refused)"
    ]
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI"):
        check_servers(settings.model_copy(update={"tracking_uri": url}))


def test_no_server_configured_means_no_problem(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert server_problems(settings) == []
