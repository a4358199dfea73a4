"""`mlops cleanup` and `mlops status` as a user types them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefect_mlops.cli import app
from prefect_mlops.settings import Settings


def test_cleanup_on_a_clean_store_says_there_is_nothing_to_recover(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["cleanup"])
    assert result.exit_code == 0, result.output
    assert "nothing to recover" in result.output


def test_status_of_a_stack_never_started_shows_every_service_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_STACK_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    names = ["prefect-server", "mlflow-server", "prefect-worker", "prediction-service"]
    assert result.output.split("\n")[:4] == [f"{name}: stopped" for name in names]


def test_status_names_a_dead_service_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "mlflow-server.pid").write_text(str(gone.pid))
    monkeypatch.setenv("MLOPS_STACK_DIR", str(tmp_path))

    result = CliRunner().invoke(app, ["status"])

    assert result.exit_code == 1
    assert f"mlflow-server: DEAD (pid {gone.pid} and its group are gone)" in result.output
