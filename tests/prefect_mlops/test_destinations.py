"""Data destinations on real CSV and Parquet files and a real SQLite database."""

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError

from prefect_mlops.destinations import (
    CsvDestination,
    Destination,
    ParquetDestination,
    SqlDestination,
    same_sqlite_file,
)
from prefect_mlops.errors import IngestError
from prefect_mlops.sources import CsvSource, SqlSource

DESTINATION: TypeAdapter[Destination] = TypeAdapter(Destination)


@pytest.fixture
def chunks() -> list[pd.DataFrame]:
    whole = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"], "prediction": [0, 1, 0]})
    return [whole.iloc[:2], whole.iloc[2:]]


def _read(kind: str, path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if kind == "parquet" else pd.read_csv(path)


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_file_appears_whole_only_when_every_chunk_is_written(
    kind: str, tmp_path: Path, chunks: list[pd.DataFrame]
) -> None:
    path = tmp_path / "out" / f"scores.{kind}"
    destination = DESTINATION.validate_python({"kind": kind, "path": str(path)})
    with destination.open_writer() as write:
        for chunk in chunks:
            write(chunk)
            assert not path.exists()
    pd.testing.assert_frame_equal(_read(kind, path), pd.concat(chunks, ignore_index=True))
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_failed_write_leaves_the_old_file_and_no_partial(
    kind: str, tmp_path: Path, chunks: list[pd.DataFrame]
) -> None:
    path = tmp_path / f"scores.{kind}"
    destination = DESTINATION.validate_python({"kind": kind, "path": str(path)})
    with destination.open_writer() as write:
        write(chunks[1])
    with pytest.raises(RuntimeError, match="scoring broke"), destination.open_writer() as write:
        write(chunks[0])
        raise RuntimeError("scoring broke")
    pd.testing.assert_frame_equal(_read(kind, path), chunks[1].reset_index(drop=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_partial_file_of_a_killed_run_is_not_appended_to(
    tmp_path: Path, chunks: list[pd.DataFrame]
) -> None:
    (tmp_path / ".scores.csv.partial").write_text("x,c,prediction\n9,z,9\n")
    with CsvDestination(path=str(tmp_path / "scores.csv")).open_writer() as write:
        write(chunks[0])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "scores.csv"), chunks[0])


def test_parquet_chunk_of_another_type_names_the_column(
    tmp_path: Path, chunks: list[pd.DataFrame]
) -> None:
    path = tmp_path / "scores.parquet"
    with (
        pytest.raises(
            IngestError, match=r"scores\.parquet changes the type of column\(s\) \['c'\]"
        ),
        ParquetDestination(path=str(path)).open_writer() as write,
    ):
        write(chunks[0])
        write(chunks[1].assign(c=[[1, 2]]))
    assert not path.exists()


def test_parquet_chunk_with_other_columns_names_them(
    tmp_path: Path, chunks: list[pd.DataFrame]
) -> None:
    with (
        pytest.raises(IngestError, match=r"has columns \['x', 'c'\], the file has"),
        ParquetDestination(path=str(tmp_path / "s.parquet")).open_writer() as write,
    ):
        write(chunks[0])
        write(chunks[1].drop(columns=["prediction"]))


def test_sql_commits_every_chunk_in_one_transaction(
    tmp_path: Path, chunks: list[pd.DataFrame]
) -> None:
    url = f"sqlite:///{tmp_path / 'out.db'}"
    destination = SqlDestination(url=url, table="scored")
    with destination.open_writer() as write:
        for chunk in chunks:
            write(chunk)
    with pytest.raises(RuntimeError), destination.open_writer() as write:
        write(chunks[0])
        raise RuntimeError("scoring broke")
    engine = sa.create_engine(url)
    stored = pd.read_sql_table("scored", engine)
    engine.dispose()
    pd.testing.assert_frame_equal(stored, pd.concat(chunks, ignore_index=True))


def test_sql_chunk_that_does_not_fit_the_table_names_it(
    tmp_path: Path, chunks: list[pd.DataFrame]
) -> None:
    url = f"sqlite:///{tmp_path / 'out.db'}"
    with (
        pytest.raises(IngestError, match=r"cannot append to sql destination sqlite:.*#scored"),
        SqlDestination(url=url, table="scored").open_writer() as write,
    ):
        write(chunks[0])
        write(chunks[1].assign(extra=1))


def test_describe_hides_the_password() -> None:
    destination = SqlDestination(url="postgresql://u:secret@db/x", table="scored")
    assert destination.describe() == "postgresql://u:***@db/x#scored"
    assert CsvDestination(path="out/s.csv").describe() == "out/s.csv"


def test_unknown_kind_is_refused_naming_the_kinds() -> None:
    with pytest.raises(ValidationError, match=r"'parquet', 'csv', 'sql'"):
        DESTINATION.validate_python({"kind": "xls", "path": "s.xls"})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"kind": "parquet"}, r"parquet\.path"),
        ({"kind": "sql", "url": "sqlite://"}, r"sql\.table"),
        ({"kind": "sql", "table": "t"}, r"sql\.url"),
    ],
)
def test_missing_location_is_refused_naming_the_field(raw: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=f"{field}\n  Field required"):
        DESTINATION.validate_python(raw)


def test_same_sqlite_file_is_recognised_through_path_spellings(tmp_path: Path) -> None:
    source = SqlSource(url=f"sqlite:///{tmp_path}/w.db", table="hours")
    same = SqlDestination(url=f"sqlite:///{tmp_path}/./w.db", table="scored")
    other = SqlDestination(url=f"sqlite:///{tmp_path}/other.db", table="scored")
    assert same_sqlite_file(source, same)
    assert not same_sqlite_file(source, other)
    assert not same_sqlite_file(CsvSource(path="w.csv"), same)
    assert not same_sqlite_file(source, CsvDestination(path="s.csv"))
