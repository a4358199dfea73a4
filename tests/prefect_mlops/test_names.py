"""Names entering through the config, the CLI and flow parameters; paths built from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from flows.monitoring import MonitoringParams
from flows.scoring import ScoringParams
from prefect_mlops.cli import app
from prefect_mlops.errors import UnsafeNameError
from prefect_mlops.monitoring.publish import project_name
from prefect_mlops.monitoring.window import run_folder
from prefect_mlops.names import MAX_NAME_LENGTH, check_name, confined, name_problem
from prefect_mlops.settings import Settings
from tests.conftest import fast_config_dict, write_config

BAD_NAMES = {
    "../../etc": "path separator",
    "..": "'..'",
    "a..b": "'..'",
    ".hidden": "starts with a dot",
    "a\\b": "path separator",
    "tab\there": "non-printable",
    "c:model": "naming rule",
    "with space": "naming rule",
    "": "empty",
    "x" * (MAX_NAME_LENGTH + 1): "characters long",
}


@pytest.mark.parametrize(("name", "problem"), BAD_NAMES.items())
def test_unsafe_names_are_refused_with_the_broken_rule(name: str, problem: str) -> None:
    with pytest.raises(UnsafeNameError, match="registered_model_name") as refused:
        check_name(name, "registered_model_name")
    assert problem in str(refused.value)


@pytest.mark.parametrize("name", ["bikeshare-demand", "rides_v2.1", "A", "x" * MAX_NAME_LENGTH])
def test_ordinary_names_pass(name: str) -> None:
    assert name_problem(name) is None
    assert check_name(name, "name") == name


def test_confined_path_stays_under_its_root(tmp_path: Path) -> None:
    assert confined(tmp_path, "model", "run", field="f") == tmp_path.resolve() / "model" / "run"


def test_path_leaving_its_root_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(UnsafeNameError, match=r"batch_id '\.\./\.\./x' leads outside"):
        confined(tmp_path / "root", "../../x", field="batch_id")
    with pytest.raises(UnsafeNameError, match="leads outside"):
        confined(tmp_path / "root", "/etc", field="batch_id")


def test_symbolic_link_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(UnsafeNameError, match="registered_model_name"):
        confined(root, "escape", "run", field="registered_model_name")


def test_monitoring_run_folder_is_confined(settings: Settings) -> None:
    folder = run_folder(settings, "bikeshare-demand")
    assert folder.is_relative_to(settings.monitoring_dir.resolve() / "bikeshare-demand")
    with pytest.raises(UnsafeNameError, match="registered_model_name"):
        run_folder(settings, "../../outside")
    assert not settings.local_root.exists()


def test_evidently_project_of_an_unsafe_name_is_refused() -> None:
    assert project_name("bikeshare-demand") == "mlops-bikeshare-demand"
    with pytest.raises(UnsafeNameError, match="registered_model_name"):
        project_name("../evil")


@pytest.mark.parametrize("params", [ScoringParams, MonitoringParams])
def test_flow_alias_parameter_follows_mlflow_alias_rules(params: type) -> None:
    extra = (
        {"source": {"kind": "csv", "path": "in.csv"}, "destination": {"kind": "csv", "path": "o"}}
        if params is ScoringParams
        else {}
    )
    for alias in ("../champion", "latest", "v3", ""):
        with pytest.raises(ValidationError, match="alias"):
            params(alias=alias, **extra)
    assert params(alias="previous-champion", **extra).alias == "previous-champion"


def test_cli_model_option_is_checked_before_the_registry(settings: Settings) -> None:
    for command in (["promote", "1"], ["rollback"]):
        result = CliRunner().invoke(app, [*command, "--model", "../../etc"])
        assert result.exit_code == 1
        assert "--model '../../etc' contains a path separator" in result.output


def test_cli_refuses_a_traversal_model_name_in_the_config(
    settings: Settings, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "bad.yaml", fast_config_dict(registered_model_name="../../etc")
    )
    result = CliRunner().invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 1
    assert "registered_model_name" in result.output
    assert "path separator" in result.output
