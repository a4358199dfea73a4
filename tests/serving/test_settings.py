"""The service's settings: one place for the prediction log, shared with scoring and monitoring."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefect_mlops.settings import Settings
from serving.settings import ServeSettings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLOPS_ARTIFACT_ROOT", "MLOPS_SERVE_LOG_DIR", "MLOPS_SERVE_LOG_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_SERVE_MODEL_NAME", "demand")


def test_log_defaults_to_the_shared_artifact_folder() -> None:
    assert ServeSettings().log_dir == Path("artifacts/prediction_log").absolute()


def test_log_follows_the_artifact_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLOPS_ARTIFACT_ROOT", str(tmp_path))
    assert ServeSettings().log_dir == tmp_path / "prediction_log" == Settings().prediction_log_dir


def test_an_explicit_log_dir_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLOPS_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("MLOPS_SERVE_LOG_DIR", str(tmp_path / "elsewhere"))
    assert ServeSettings().log_dir == tmp_path / "elsewhere"


def test_log_url_comes_from_its_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SERVE_LOG_URL", "sqlite:///log.db")
    assert ServeSettings().log_url == "sqlite:///log.db"


def test_fast_lane_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SERVE_FAST_LANE", "false")
    assert ServeSettings().fast_lane is False


def test_a_model_name_that_could_leave_its_folder_is_refused(monkeypatch) -> None:
    import pydantic
    import pytest

    from serving.settings import ServeSettings

    monkeypatch.setenv("MLOPS_SERVE_MODEL_NAME", "../../etc")
    with pytest.raises(pydantic.ValidationError, match="model_name"):
        ServeSettings()


def test_the_shared_log_url_is_the_service_log_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    monkeypatch.setenv("MLOPS_PREDICTION_LOG_URL", url)
    assert ServeSettings().log_url == url == Settings().prediction_log_url
    monkeypatch.setenv("MLOPS_SERVE_LOG_URL", "sqlite:///elsewhere.db")
    assert ServeSettings().log_url == "sqlite:///elsewhere.db"  # the service's own wins
