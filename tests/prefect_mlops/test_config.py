from pathlib import Path

import pytest

from prefect_mlops.config import load_config, parse_config
from prefect_mlops.errors import ConfigError
from tests.conftest import BIKESHARE_CONFIG, fast_config_dict


def test_bundled_config_loads() -> None:
    config = load_config(BIKESHARE_CONFIG)
    assert config.target == "bikers"
    assert config.split.strategy == "time"
    assert {"casual", "registered"} <= set(config.exclude)


def test_unknown_key_is_rejected_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"split\.shuffle: Extra inputs are not permitted"):
        parse_config(fast_config_dict(split={"strategy": "random", "shuffle": True}))


def test_wrong_type_is_rejected_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"tuning\.cv_folds"):
        parse_config(fast_config_dict(tuning={"cv_folds": "three"}))


def test_gate_metric_must_fit_the_task() -> None:
    with pytest.raises(ConfigError, match="accuracy"):
        parse_config(fast_config_dict(gate={"primary_metric": "accuracy"}))


def test_time_split_needs_a_time_column() -> None:
    with pytest.raises(ConfigError, match="time_column"):
        parse_config(fast_config_dict(split={"strategy": "time"}))


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_config_hash_changes_with_content() -> None:
    a = parse_config(fast_config_dict())
    b = parse_config(fast_config_dict(seed=7))
    assert a.fingerprint() == parse_config(fast_config_dict()).fingerprint()
    assert a.fingerprint() != b.fingerprint()


def test_training_window_needs_exactly_one_bound() -> None:
    with pytest.raises(ConfigError, match="exactly one of days or rows"):
        parse_config(fast_config_dict(training_window={"time_column": "timestamp"}))


def test_quality_report_sample_is_configurable_and_bounded() -> None:
    raw = fast_config_dict()
    raw["monitoring"] = {"quality_report_max_rows": 20_000}
    assert parse_config(raw).monitoring.quality_report_max_rows == 20_000
    raw["monitoring"] = {"quality_report_max_rows": 10}
    with pytest.raises(ConfigError, match="quality_report_max_rows"):
        parse_config(raw)


def test_source_kind_chooses_its_fields_and_unknown_kinds_are_named() -> None:
    with pytest.raises(ConfigError, match=r"source: Input tag 'xls' .* 'csv', 'parquet', 'sql'"):
        parse_config(fast_config_dict(source={"kind": "xls", "path": "rows.xls"}))
    with pytest.raises(ConfigError, match=r"source\.csv\.path: Field required"):
        parse_config(fast_config_dict(source={"kind": "csv"}))


def test_sql_source_needs_exactly_one_of_table_or_query() -> None:
    both = {"kind": "sql", "url": "sqlite://", "table": "t", "query": "select 1"}
    with pytest.raises(ConfigError, match=r"source\.sql: .*exactly one of table or query"):
        parse_config(fast_config_dict(source=both))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"registered_model_name": "../../etc"}, "registered_model_name"),
        ({"name": "bike/share"}, "name"),
        ({"experiment_name": ".."}, "experiment_name"),
        ({"validation": {"suite": "../suites/x"}}, r"validation\.suite"),
    ],
)
def test_names_that_would_leave_a_folder_are_refused_naming_the_field(
    overrides: dict, field: str
) -> None:
    with pytest.raises(ConfigError, match=rf"{field}: Value error"):
        parse_config(fast_config_dict(**overrides))
