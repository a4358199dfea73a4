"""The stack's profiles: what each service is started with (no server started here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from prefect_mlops.cli_ops import _hide_password
from prefect_mlops.postgres import LocalPostgres, PostgresError, server_url
from prefect_mlops.stack import (
    Service,
    StackSettings,
    services,
    stack_down,
    stack_env,
    stack_status,
)

SERVER = "postgresql://ops:s3cret@db.internal:6543"


def by_name(stack: StackSettings, tmp_path: Path) -> dict[str, Service]:
    return {s.name: s for s in services(stack, tmp_path)}


def production(tmp_path: Path, **overrides: object) -> StackSettings:
    return StackSettings(
        dir=tmp_path, profile="production", database_url=SecretStr(SERVER), **overrides
    )


def test_local_profile_keeps_sqlite_one_mlflow_worker_and_the_parquet_log(tmp_path: Path) -> None:
    chosen = by_name(StackSettings(dir=tmp_path), tmp_path)
    mlflow = chosen["mlflow-server"].command
    assert mlflow[mlflow.index("--backend-store-uri") + 1].startswith("sqlite:///")
    assert mlflow[mlflow.index("--workers") + 1] == "1"
    assert "--uvicorn-opts" not in mlflow
    assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" not in chosen["prefect-server"].env
    assert all("MLOPS_SERVE_LOG_URL" not in s.env for s in chosen.values())


def test_production_puts_prefect_on_asyncpg_in_database_prefect(tmp_path: Path) -> None:
    env = by_name(production(tmp_path), tmp_path)["prefect-server"].env
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == (
        "postgresql+asyncpg://ops:s3cret@db.internal:6543/prefect"
    )


def test_production_mlflow_on_postgresql_with_served_artifacts_and_two_patient_workers(
    tmp_path: Path,
) -> None:
    mlflow = by_name(production(tmp_path), tmp_path)["mlflow-server"].command
    assert mlflow[mlflow.index("--backend-store-uri") + 1] == (
        "postgresql://ops:s3cret@db.internal:6543/mlflow"
    )
    assert "--serve-artifacts" in mlflow
    assert mlflow[mlflow.index("--artifacts-destination") + 1] == str(
        (tmp_path / "mlartifacts").resolve()
    )
    assert mlflow[mlflow.index("--workers") + 1] == "2"
    assert mlflow[mlflow.index("--uvicorn-opts") + 1] == "--timeout-worker-healthcheck 120"


def test_production_artifact_destination_can_be_object_storage(tmp_path: Path) -> None:
    stack = production(tmp_path, artifacts_destination="s3://bucket/mlflow")
    mlflow = by_name(stack, tmp_path)["mlflow-server"].command
    assert mlflow[mlflow.index("--artifacts-destination") + 1] == "s3://bucket/mlflow"


def test_production_service_and_worker_share_the_postgresql_prediction_log(
    tmp_path: Path,
) -> None:
    chosen = by_name(production(tmp_path), tmp_path)
    log = "postgresql://ops:s3cret@db.internal:6543/predictions"
    assert chosen["prediction-service"].env["MLOPS_SERVE_LOG_URL"] == log
    assert chosen["prefect-worker"].env["MLOPS_SERVE_LOG_URL"] == log


def test_printed_exports_hide_the_servers_password(tmp_path: Path) -> None:
    printed = [_hide_password(v) for v in stack_env(production(tmp_path)).values()]
    assert "postgresql://ops:***@db.internal:6543/predictions" in printed
    assert not any("s3cret" in line for line in printed)


def test_a_local_cluster_url_carries_no_password_but_a_passfile(tmp_path: Path) -> None:
    (tmp_path / "postgres.json").write_text('{"port": 45432, "role": "mlops"}')
    stack = StackSettings(dir=tmp_path, profile="production")
    env = stack_env(stack)
    assert env["MLOPS_SERVE_LOG_URL"] == "postgresql://mlops@127.0.0.1:45432/predictions"
    assert env["PGPASSFILE"] == str((tmp_path / "postgres.pgpass").resolve())


@pytest.mark.parametrize("url", ["sqlite:///x.db", "postgresql:///no-host", "not a url at all"])
def test_a_database_url_that_is_no_postgresql_server_is_refused_by_name(url: str) -> None:
    with pytest.raises(PostgresError, match="MLOPS_STACK_DATABASE_URL"):
        server_url(url)


def test_missing_postgresql_binaries_name_the_install_script(tmp_path: Path) -> None:
    cluster = LocalPostgres(tmp_path / "stack", bin_dir=tmp_path / "no-bin")
    with pytest.raises(PostgresError, match=r"\.ci/install-postgres\.sh"):
        cluster.create()
    assert not (tmp_path / "stack").exists()


def test_a_plain_down_also_handles_a_cluster_an_earlier_production_up_left(
    tmp_path: Path,
) -> None:
    (tmp_path / "postgres.json").write_text('{"port": 45432, "role": "mlops"}')
    (tmp_path / "postgres" / "data").mkdir(parents=True)
    (tmp_path / "postgres" / "data" / "PG_VERSION").write_text("15\n")
    local = StackSettings(dir=tmp_path)  # the default profile, as `mlops down` without options
    assert stack_down(local, tmp_path)[-1] == "postgres: not running"
    assert stack_status(local, tmp_path)[0].line() == "postgres: stopped"


def test_a_stack_that_never_made_a_cluster_shows_no_postgres(tmp_path: Path) -> None:
    names = [s.name for s in stack_status(StackSettings(dir=tmp_path), tmp_path)]
    assert "postgres" not in names
