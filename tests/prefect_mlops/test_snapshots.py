"""Snapshots of CSV files streamed in blocks: what pandas reads, fingerprinted by content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from prefect_mlops import streaming
from prefect_mlops.config import WindowConfig
from prefect_mlops.errors import IngestError
from prefect_mlops.settings import Settings
from prefect_mlops.snapshots import fingerprint_frame, take_snapshot
from prefect_mlops.sources import CsvSource, SqlSource

ROOT = Path(__file__).resolve().parents[2]
BIKESHARE_CSV = ROOT / "data" / "bikeshare" / "bikeshare_hourly_2011.csv"


@pytest.fixture
def mixed_csv(tmp_path: Path) -> Path:
    """Ints, ints with gaps, floats, booleans, text with gaps and ISO timestamps kept as text."""
    frame = pd.DataFrame(
        {
            "n": range(600),
            "gappy": [None if i % 7 == 0 else i for i in range(600)],
            "x": [i / 3 for i in range(600)],
            "flag": [i % 2 == 0 for i in range(600)],
            "c": [None if i % 5 == 0 else f"v{i % 4}" for i in range(600)],
            "t": pd.date_range("2024-01-01", periods=600, freq="h").strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    return tmp_path / "mixed.csv"


def snapshot_of(path: Path, snapshot_dir: Path) -> tuple[str, pd.DataFrame]:
    snapshot = take_snapshot(CsvSource(path=str(path)), snapshot_dir)
    assert Path(snapshot.uri).name == f"{snapshot.fingerprint}.parquet"
    return snapshot.fingerprint, pd.read_parquet(snapshot.uri)


@pytest.mark.parametrize("name", ["bikeshare", "mixed"])
def test_streamed_snapshot_equals_the_pandas_read_of_the_csv(
    name: str, mixed_csv: Path, tmp_path: Path
) -> None:
    path = BIKESHARE_CSV if name == "bikeshare" else mixed_csv
    _, frame = snapshot_of(path, tmp_path / "snap")
    pd.testing.assert_frame_equal(frame, pd.read_csv(path))


def test_same_rows_give_the_same_fingerprint_and_one_value_changes_it(
    mixed_csv: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.csv"
    copy.write_bytes(mixed_csv.read_bytes())
    first, _ = snapshot_of(mixed_csv, tmp_path / "snap")
    assert snapshot_of(copy, tmp_path / "snap")[0] == first
    copy.write_text(copy.read_text().replace("v3", "v9", 1))
    assert snapshot_of(copy, tmp_path / "snap")[0] != first
    assert len(list((tmp_path / "snap").iterdir())) == 2  # content-addressed, no temp left


def test_block_boundaries_do_not_change_the_snapshot(
    mixed_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = snapshot_of(mixed_csv, tmp_path / "whole")
    monkeypatch.setattr(streaming, "CSV_BLOCK_BYTES", 1000)  # about 30 rows a block
    fingerprint, frame = snapshot_of(mixed_csv, tmp_path / "blocks")
    assert fingerprint == whole[0]
    pd.testing.assert_frame_equal(frame, whole[1])


@pytest.mark.parametrize(
    ("late_value", "dtype"), [("2.5", "float64"), ("n-a", "object")], ids=["float", "text"]
)
def test_a_late_value_widens_its_column_as_pandas_would(
    late_value: str, dtype: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "late.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(500)) + f"{late_value},7\n")
    monkeypatch.setattr(streaming, "CSV_BLOCK_BYTES", 256)  # the odd value is blocks away
    progress: list[str] = []
    snapshot = take_snapshot(CsvSource(path=str(path)), tmp_path / "snap", progress=progress.append)
    frame = pd.read_parquet(snapshot.uri)
    assert str(frame["a"].dtype) == dtype
    pd.testing.assert_frame_equal(frame, pd.read_csv(path))
    assert any("column 'a' was read as int64" in line and late_value in line for line in progress)


def test_progress_is_reported_per_million_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streaming, "PROGRESS_ROWS", 100)
    path = tmp_path / "rows.csv"
    path.write_text("a\n" + "".join(f"{i}\n" for i in range(350)))
    progress: list[str] = []
    take_snapshot(CsvSource(path=str(path)), tmp_path / "snap", progress=progress.append)
    assert progress[-1].startswith(f"snapshot of {path}: 350 rows in ")


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty"), ("a,b\n", "has no rows"), ("a,a\n1,2\n", r"duplicated columns \['a'\]")],
    ids=["empty", "header-only", "repeated-column"],
)
def test_bad_csv_is_named_and_leaves_nothing(content: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(IngestError, match=message):
        take_snapshot(CsvSource(path=str(tmp_path / "bad.csv")), tmp_path / "snap")
    assert not (tmp_path / "snap").exists() or not any((tmp_path / "snap").iterdir())


def test_a_window_over_a_file_above_the_limit_is_refused_naming_the_setting(
    mixed_csv: Path, tmp_path: Path
) -> None:
    small = Settings(max_whole_read_bytes=1000)
    window = WindowConfig(time_column="t", rows=10)
    with pytest.raises(IngestError, match="MLOPS_MAX_WHOLE_READ_BYTES") as raised:
        take_snapshot(CsvSource(path=str(mixed_csv)), tmp_path / "snap", window, small)
    assert str(mixed_csv) in str(raised.value)
    assert not (tmp_path / "snap").exists()
    within = take_snapshot(CsvSource(path=str(mixed_csv)), tmp_path / "snap", window, Settings())
    assert within.rows == 10


def test_a_sql_source_above_the_row_limit_is_refused_before_reading(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    engine = sa.create_engine(url)
    pd.DataFrame({"a": range(50)}).to_sql("rows", engine, index=False)
    engine.dispose()
    for source in (
        SqlSource(url=url, table="rows"),
        SqlSource(url=url, query="SELECT * FROM rows"),
    ):
        with pytest.raises(IngestError, match="50 rows, above max_whole_read_rows \\(49\\)"):
            take_snapshot(source, tmp_path / "snap", settings=Settings(max_whole_read_rows=49))
        assert take_snapshot(source, tmp_path / "snap", settings=Settings()).rows == 50


def test_a_frame_with_list_cells_has_a_fingerprint() -> None:
    """A monitoring window of a classifier carries its logged class probabilities as lists."""
    frame = pd.DataFrame({"x": [1, 2], "p": [[0.1, 0.9], None]})
    same = pd.DataFrame({"x": [1, 2], "p": [np.array([0.1, 0.9]), None]})
    other = pd.DataFrame({"x": [1, 2], "p": [[0.2, 0.8], None]})
    assert fingerprint_frame(frame) == fingerprint_frame(same) != fingerprint_frame(other)
