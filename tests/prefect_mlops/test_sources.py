"""Data sources on real CSV and Parquet files and a real SQLite database."""

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError

from prefect_mlops.config import WindowConfig
from prefect_mlops.errors import IngestError
from prefect_mlops.sources import (
    CsvSource,
    ParquetSource,
    Source,
    SqlSource,
    recent_rows,
    source_for_path,
)

SOURCE: TypeAdapter[Source] = TypeAdapter(Source)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0, 2.0, None, 4.0, 5.0], "c": list("abaab"), "y": [0, 1, 0, 1, 0]})


@pytest.fixture
def csv_source(tmp_path: Path, frame: pd.DataFrame) -> CsvSource:
    frame.to_csv(tmp_path / "d.csv", index=False)
    return CsvSource(path=str(tmp_path / "d.csv"))


@pytest.fixture
def parquet_source(tmp_path: Path, frame: pd.DataFrame) -> ParquetSource:
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    return ParquetSource(path=str(tmp_path / "d.parquet"))


@pytest.fixture
def sqlite_url(tmp_path: Path, frame: pd.DataFrame) -> str:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    engine = sa.create_engine(url)
    frame.to_sql("rows", engine, index=False)
    engine.dispose()
    return url


def test_csv_reads_whole(csv_source: CsvSource, frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(csv_source.read(), frame)


def test_parquet_reads_whole(parquet_source: ParquetSource, frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(parquet_source.read(), frame)


def test_sql_table_and_query_read_whole(sqlite_url: str) -> None:
    assert len(SqlSource(url=sqlite_url, table="rows").read()) == 5
    assert len(SqlSource(url=sqlite_url, query="select * from rows where y = 0").read()) == 3


@pytest.mark.parametrize("kind", ["csv", "parquet", "sql-table", "sql-query"])
def test_chunks_cover_every_row_in_order(
    kind: str,
    csv_source: CsvSource,
    parquet_source: ParquetSource,
    sqlite_url: str,
    frame: pd.DataFrame,
) -> None:
    source = {
        "csv": csv_source,
        "parquet": parquet_source,
        "sql-table": SqlSource(url=sqlite_url, table="rows"),
        "sql-query": SqlSource(url=sqlite_url, query="select * from rows"),
    }[kind]
    chunks = list(source.iter_chunks(2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    joined = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(joined, frame, check_dtype=False)


def test_describe_hides_the_password() -> None:
    source = SqlSource(url="postgresql://u:secret@db/x", table="t")
    assert "secret" not in source.describe()
    assert source.describe() == "postgresql://u:***@db/x#t"
    assert SqlSource(url="sqlite:///d.db", query="select 1").describe() == "sqlite:///d.db#query"


def test_file_source_describes_its_path(csv_source: CsvSource) -> None:
    assert csv_source.describe() == csv_source.path


def test_kind_chooses_the_model() -> None:
    assert isinstance(
        SOURCE.validate_python({"kind": "parquet", "path": "d.parquet"}), ParquetSource
    )
    assert isinstance(
        SOURCE.validate_python({"kind": "sql", "url": "sqlite://", "table": "t"}), SqlSource
    )


def test_unknown_kind_is_refused_naming_the_kinds() -> None:
    with pytest.raises(ValidationError, match=r"'csv', 'parquet', 'sql'"):
        SOURCE.validate_python({"kind": "xls", "path": "d.xls"})


def test_missing_path_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"csv\.path\n  Field required"):
        SOURCE.validate_python({"kind": "csv"})


def test_a_field_of_another_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"csv\.table\n  Extra inputs are not permitted"):
        SOURCE.validate_python({"kind": "csv", "path": "d.csv", "table": "t"})


@pytest.mark.parametrize(
    ("fields", "given"), [({"table": "t", "query": "select 1"}, "both"), ({}, "neither")]
)
def test_sql_needs_exactly_one_of_table_or_query(fields: dict, given: str) -> None:
    with pytest.raises(ValidationError, match=f"exactly one of table or query \\({given} given"):
        SqlSource(url="sqlite://", **fields)


def test_malformed_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError, match="not a SQLAlchemy URL") as caught:
        SqlSource(url="::secret::", table="t")
    assert all("secret" not in str(e["msg"]) for e in caught.value.errors())


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"csv source not found: .*missing\.csv"):
        CsvSource(path=str(tmp_path / "missing.csv")).read()
    with pytest.raises(IngestError, match=r"parquet source not found: .*missing\.parquet"):
        list(ParquetSource(path=str(tmp_path / "missing.parquet")).iter_chunks(10))


def test_empty_csv_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(IngestError, match=r"csv source .*empty\.csv is empty"):
        CsvSource(path=str(tmp_path / "empty.csv")).read()


def test_header_only_csv_has_no_rows(tmp_path: Path) -> None:
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(IngestError, match=r"source .*header\.csv has no rows"):
        CsvSource(path=str(tmp_path / "header.csv")).read()


def test_unreadable_parquet_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    source = ParquetSource(path=str(tmp_path / "bad.parquet"))
    for read in (source.read, lambda: list(source.iter_chunks(10)), source.read_shape):
        with pytest.raises(IngestError, match=r"cannot read parquet source .*bad\.parquet"):
            read()


def test_unreadable_csv_chunk_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_bytes(b"a,b\n1,2\n" + b"\xff\xfe,3\n" * 3)
    with pytest.raises(IngestError, match=r"cannot read csv source .*bad\.csv"):
        list(CsvSource(path=str(tmp_path / "bad.csv")).iter_chunks(1))


def test_repeated_columns_are_named(tmp_path: Path) -> None:
    pq.write_table(pa.table([[1], [2]], names=["a", "a"]), tmp_path / "dupes.parquet")
    with pytest.raises(IngestError, match=r"duplicated columns \['a'\]"):
        ParquetSource(path=str(tmp_path / "dupes.parquet")).read_shape()


def test_absent_sql_table_is_named(tmp_path: Path) -> None:
    source = SqlSource(url=f"sqlite:///{tmp_path / 'empty.db'}", table="missing")
    with pytest.raises(IngestError, match="table 'missing' not found"):
        source.read()
    with pytest.raises(IngestError, match="table 'missing' not found"):
        list(source.iter_chunks(10))


def test_bad_query_is_named(sqlite_url: str) -> None:
    with pytest.raises(IngestError, match=r"cannot read sql source sqlite:.*#query"):
        SqlSource(url=sqlite_url, query="select nope from rows").read()


def test_parquet_shape_comes_from_the_footer(tmp_path: Path) -> None:
    indexed = pd.DataFrame({"a": [1, 2]}, index=pd.Index(["r1", "r2"], name="key"))
    indexed.to_parquet(tmp_path / "d.parquet")
    shape = ParquetSource(path=str(tmp_path / "d.parquet")).read_shape()
    assert (shape.rows, shape.columns) == (2, ["a"])


@pytest.mark.parametrize(
    ("name", "kind"),
    [("d.csv", CsvSource), ("d.parquet", ParquetSource), ("D.PQ", ParquetSource)],
)
def test_source_for_path_tells_the_kind_by_suffix(name: str, kind: type) -> None:
    assert type(source_for_path(name)) is kind
    assert source_for_path(Path(name)).path == name


def test_source_for_path_refuses_an_unknown_suffix() -> None:
    with pytest.raises(IngestError, match=r"cannot tell the format of rows\.xlsx"):
        source_for_path("rows.xlsx")


def test_recent_window_keeps_the_last_days() -> None:
    frame = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=10, freq="D").astype(str)})
    recent = recent_rows(
        frame.sample(frac=1, random_state=0), WindowConfig(time_column="t", days=3)
    )
    assert sorted(recent["t"]) == ["2024-01-08", "2024-01-09", "2024-01-10"]


def test_recent_window_keeps_the_last_rows() -> None:
    frame = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=10, freq="D").astype(str)})
    recent = recent_rows(frame, WindowConfig(time_column="t", rows=2))
    assert recent["t"].tolist() == ["2024-01-09", "2024-01-10"]


def test_window_on_absent_column_is_named() -> None:
    with pytest.raises(IngestError, match="time_column 'when' is not in the data"):
        recent_rows(pd.DataFrame({"t": ["2024-01-01"]}), WindowConfig(time_column="when", rows=1))
