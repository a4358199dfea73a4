"""Which task runner a setting names, and cross-validation folds off a Dask worker."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from prefect_mlops.dask_runner import RunnerChoice, fold_backend, parse_task_runner
from prefect_mlops.settings import Settings


@pytest.mark.parametrize(
    ("value", "choice"),
    [
        ("threads", RunnerChoice("threads")),
        ("dask", RunnerChoice("local-dask")),
        (" tcp://scheduler:8786 ", RunnerChoice("scheduler", "tcp://scheduler:8786")),
        ("tls://10.0.0.5:8786", RunnerChoice("scheduler", "tls://10.0.0.5:8786")),
    ],
)
def test_a_setting_names_threads_a_local_cluster_or_a_scheduler(
    value: str, choice: RunnerChoice
) -> None:
    assert parse_task_runner(value) == choice


@pytest.mark.parametrize(
    "value", ["thread", "tcp://scheduler", "http://scheduler:8786", "tcp://:8786", "tcp://h:x"]
)
def test_anything_else_is_refused_naming_what_is_accepted(value: str) -> None:
    with pytest.raises(ValueError, match=r"expected 'threads', 'dask'|bad port") as raised:
        parse_task_runner(value)
    assert repr(value) in str(raised.value)


def test_the_setting_is_read_from_the_environment_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().task_runner == "threads"
    monkeypatch.setenv("MLOPS_TASK_RUNNER", "tcp://127.0.0.1:8786")
    assert Settings().task_runner == "tcp://127.0.0.1:8786"
    monkeypatch.setenv("MLOPS_TASK_RUNNER", "dask-cluster")
    with pytest.raises(ValidationError, match="task_runner 'dask-cluster'"):
        Settings()


def test_folds_stay_in_process_off_a_dask_worker() -> None:
    with fold_backend() as n_jobs:
        assert n_jobs is None
