from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from prefect_mlops.config import WindowConfig
from prefect_mlops.errors import IngestError
from prefect_mlops.snapshots import fingerprint_frame
from prefect_mlops.sources import CsvSource, ParquetSource, SqlSource
from tasks.ingest import snapshot_source


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0, 2.0, None], "c": ["a", "b", "a"], "y": [0, 1, 0]})


def test_csv_snapshot_is_content_addressed(tmp_path: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(tmp_path / "d.csv", index=False)
    source = CsvSource(path=str(tmp_path / "d.csv"))
    first = snapshot_source.fn(source, tmp_path / "snap")
    second = snapshot_source.fn(source, tmp_path / "snap")
    assert first == second
    assert Path(first.uri).name == f"{first.fingerprint}.parquet"
    assert first.rows == 3
    pd.testing.assert_frame_equal(pd.read_parquet(first.uri), pd.read_csv(tmp_path / "d.csv"))


def test_fingerprint_changes_when_one_value_changes(frame: pd.DataFrame) -> None:
    changed = frame.copy()
    changed.loc[1, "c"] = "z"
    assert fingerprint_frame(frame) == fingerprint_frame(frame.copy())
    assert fingerprint_frame(frame) != fingerprint_frame(changed)


def test_parquet_snapshot_is_a_byte_copy_named_by_its_hash(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    source = ParquetSource(path=str(tmp_path / "d.parquet"))
    first = snapshot_source.fn(source, tmp_path / "snap")
    assert Path(first.uri).read_bytes() == (tmp_path / "d.parquet").read_bytes()
    assert first == snapshot_source.fn(source, tmp_path / "snap")
    assert (first.rows, first.columns) == (3, ["x", "c", "y"])
    assert sorted(p.name for p in (tmp_path / "snap").iterdir()) == [Path(first.uri).name]
    frame.assign(y=[0, 1, 1]).to_parquet(tmp_path / "d.parquet", index=False)
    changed = snapshot_source.fn(source, tmp_path / "snap")
    assert changed.fingerprint != first.fingerprint
    assert Path(first.uri).is_file()  # the earlier snapshot is untouched
    pd.testing.assert_frame_equal(pd.read_parquet(first.uri), frame)


def test_parquet_snapshot_lists_columns_without_the_stored_index(tmp_path: Path) -> None:
    indexed = pd.DataFrame({"a": [1, 2]}, index=pd.Index(["r1", "r2"], name="key"))
    indexed.to_parquet(tmp_path / "d.parquet")
    source = ParquetSource(path=str(tmp_path / "d.parquet"))
    assert snapshot_source.fn(source, tmp_path / "snap").columns == ["a"]


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_bytes(b"not parquet at all"), "cannot read parquet source"),
        (lambda p: pd.DataFrame({"a": []}).to_parquet(p), "has no rows"),
        (lambda p: None, "parquet source not found"),
    ],
    ids=["unreadable", "no-rows", "missing"],
)
def test_bad_parquet_snapshot_is_named(tmp_path: Path, write, message: str) -> None:
    write(tmp_path / "bad.parquet")
    source = ParquetSource(path=str(tmp_path / "bad.parquet"))
    with pytest.raises(IngestError, match=message):
        snapshot_source.fn(source, tmp_path / "snap")
    assert not (tmp_path / "snap").exists() or not any((tmp_path / "snap").iterdir())


def test_parquet_with_repeated_columns_is_refused(tmp_path: Path) -> None:
    table = pa.table([[1], [2]], names=["a", "a"])
    pq.write_table(table, tmp_path / "dupes.parquet")
    source = ParquetSource(path=str(tmp_path / "dupes.parquet"))
    with pytest.raises(IngestError, match=r"duplicated columns \['a'\]"):
        snapshot_source.fn(source, tmp_path / "snap")


def test_windowed_snapshot_keeps_only_recent_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=10, freq="D").astype(str)})
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    source = ParquetSource(path=str(tmp_path / "d.parquet"))
    snapshot = snapshot_source.fn(source, tmp_path / "snap", WindowConfig(time_column="t", rows=3))
    assert snapshot.rows == 3
    assert pd.read_parquet(snapshot.uri)["t"].tolist() == ["2024-01-08", "2024-01-09", "2024-01-10"]


def test_sql_snapshot_names_the_table_without_the_password(tmp_path: Path, frame) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    engine = sa.create_engine(url)
    frame.to_sql("rows", engine, index=False)
    engine.dispose()
    snapshot = snapshot_source.fn(SqlSource(url=url, table="rows"), tmp_path / "snap")
    assert (snapshot.rows, snapshot.source) == (3, f"{url}#rows")
