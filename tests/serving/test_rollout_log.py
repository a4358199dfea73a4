"""The prediction log's `arm` column: written by both stores, and `champion` for rows of files and
tables written before it existed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from prefect_mlops.prediction_log import (
    LogValueError,
    ParquetStore,
    PredictionRecord,
    SqlStore,
    read_model_log,
)

NOW = time.time()


def _record(request_id: str, arm: str = "champion", source: str = "online") -> PredictionRecord:
    columns = {"temp": [1.0, 2.0]}
    return PredictionRecord(
        request_id, NOW, "demand", "2", columns, np.array([3.0, 4.0]), None, 0, source, arm
    )


@pytest.mark.parametrize("kind", ["parquet", "sql"])
def test_rows_name_their_arm(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}" if kind == "sql" else None
    store = SqlStore(url) if url else ParquetStore(tmp_path / "log")
    store.append_predictions(
        [
            _record("a"),
            _record("b", "challenger"),
            _record("c", "shadow", "shadow"),
        ]
    )
    rows = read_model_log("demand", url=url, directory=tmp_path / "log").rows
    arms = rows.drop_duplicates("request_id").set_index("request_id")["arm"].to_dict()
    assert arms == {"a": "champion", "b": "challenger", "c": "shadow"}


def test_an_unknown_arm_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(LogValueError, match="arm 'blue'"):
        ParquetStore(tmp_path / "log").append_predictions([_record("a", "blue")])


def test_parquet_files_written_before_the_arm_column_read_as_champion(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path / "log")
    store.append_predictions([_record("old")])
    (old,) = (tmp_path / "log" / "predictions").rglob("part-*.parquet")
    pq.write_table(pq.read_table(old).drop_columns(["arm"]), old)  # as the earlier code wrote
    store.append_predictions([_record("new", "challenger")])
    rows = read_model_log("demand", directory=tmp_path / "log").rows
    arms = rows.drop_duplicates("request_id").set_index("request_id")["arm"].to_dict()
    assert arms == {"old": "champion", "new": "challenger"}
    alone = tmp_path / "alone"
    (alone / old.relative_to(tmp_path / "log")).parent.mkdir(parents=True)
    old.rename(alone / old.relative_to(tmp_path / "log"))
    assert set(read_model_log("demand", directory=alone).rows["arm"]) == {"champion"}


def test_a_sql_table_of_the_earlier_schema_gets_the_column_and_reads_as_champion(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # the table as the code before `arm` created it
        connection.execute(
            sa.text(
                "CREATE TABLE predictions (request_id TEXT, model_name TEXT, model_version TEXT, "
                "row_index INTEGER, timestamp FLOAT, features TEXT, prediction TEXT, "
                "probabilities TEXT, source TEXT, feature_types TEXT)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO predictions VALUES ('old', 'demand', '1', 0, :now, '{\"temp\": 1.0}',"
                " '3.0', NULL, 'online', NULL)"
            ),
            {"now": NOW},
        )
        connection.execute(
            sa.text(
                "CREATE TABLE feedback (request_id TEXT, row_index INTEGER, timestamp FLOAT, "
                "label TEXT)"
            )
        )
    assert set(read_model_log("demand", url=url).rows["arm"]) == {"champion"}
    SqlStore(url).append_predictions([_record("new", "shadow", "shadow")])
    rows = read_model_log("demand", url=url).rows
    arms = rows.drop_duplicates("request_id").set_index("request_id")["arm"].to_dict()
    assert arms == {"old": "champion", "new": "shadow"}
    engine.dispose()
