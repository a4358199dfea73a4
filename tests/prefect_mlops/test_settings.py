"""The settings object: where things live, the same from any working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefect_mlops.settings import Settings


def test_a_relative_artifact_root_is_made_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOPS_ARTIFACT_ROOT", "shared/artifacts")
    settings = Settings()
    assert settings.artifact_root == str(tmp_path / "shared" / "artifacts")
    assert settings.snapshot_dir.is_absolute()
    assert settings.prediction_log_dir == tmp_path / "shared" / "artifacts" / "prediction_log"


def test_a_home_relative_artifact_root_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_ARTIFACT_ROOT", "~/mlops-artifacts")
    assert Settings().artifact_root == str(Path.home() / "mlops-artifacts")
