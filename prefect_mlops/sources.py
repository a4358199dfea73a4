"""Data sources: a CSV or Parquet file, or a SQL table or query, read whole or in chunks."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from prefect_mlops.errors import IngestError

if TYPE_CHECKING:
    from prefect_mlops.config import WindowConfig


def _parse_url(url: str) -> str:
    try:
        sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        # The value itself stays out of the message: it may hold a password.
        raise ValueError("not a SQLAlchemy URL (dialect+driver://user:pass@host/db)") from None
    return url


SqlUrl = Annotated[str, AfterValidator(_parse_url), Field(description="SQLAlchemy URL")]


def safe_url(url: str) -> str:
    """The URL with its password masked, fit for logs and artifacts."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def check_frame(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The frame itself, refused when it has no rows or repeats a column name."""
    if frame.empty:
        raise IngestError(f"source {where} has no rows")
    check_columns([str(c) for c in frame.columns], where)
    return frame


def check_columns(columns: list[str], where: str) -> None:
    """Refuse a column name that appears twice."""
    if len(set(columns)) < len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise IngestError(f"source {where} has duplicated columns {dupes}")


class _Source(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str

    @abstractmethod
    def describe(self) -> str:
        """Where the rows come from, safe to log (no credentials)."""

    @abstractmethod
    def _load(self) -> pd.DataFrame: ...

    @abstractmethod
    def iter_chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        """The rows, `rows` at a time: never the whole source in memory."""

    def read(self) -> pd.DataFrame:
        """Every row; a source without rows or with a repeated column name is refused."""
        return check_frame(self._load(), self.describe())


class _FileSource(_Source):
    path: str = Field(min_length=1, description="file path, relative to the project")

    def describe(self) -> str:
        """The file's path."""
        return self.path

    def _existing(self) -> Path:
        path = Path(self.path)
        if not path.is_file():
            raise IngestError(f"{self.kind} source not found: {path}")
        return path


class CsvSource(_FileSource):
    """A CSV file with a header row."""

    model_config = ConfigDict(title="CSV file")  # the option's name in the Prefect UI's form

    kind: Literal["csv"] = "csv"

    def _load(self) -> pd.DataFrame:
        with self._translated():
            return pd.read_csv(self._existing())

    def iter_chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        """The rows, `rows` at a time: never the whole file in memory."""
        with self._translated(), pd.read_csv(self._existing(), chunksize=rows) as reader:
            yield from reader

    def csv_types(self, block_bytes: int) -> dict[str, pa.DataType]:
        """Column types inferred from the first block: numbers, booleans and text, like pandas.

        A column empty in the first block is read as float64 (what pandas makes of it).
        """
        schema = self._open(block_bytes, {}).schema
        check_columns(schema.names, self.describe())
        return {
            field.name: field.type
            if any(kept(field.type) for kept in _KEPT_TYPES)
            else pa.float64()
            if pa.types.is_null(field.type)
            else pa.string()
            for field in schema
        }

    def iter_batches(
        self, block_bytes: int, types: Mapping[str, pa.DataType]
    ) -> Iterator[pa.RecordBatch]:
        """The rows as Arrow record batches of about `block_bytes` of CSV, typed by `types`.

        Never the whole file in memory. A value a fixed type cannot take raises
        `CsvTypeConflict` naming the column, so the caller can widen the type and start again.
        """
        reader = self._open(block_bytes, types)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                raise self._conflict(exc, list(types), types) from exc
            yield batch

    def _open(self, block_bytes: int, types: Mapping[str, pa.DataType]) -> pacsv.CSVStreamingReader:
        path = self._existing()
        try:
            return pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=block_bytes),
                # Empty text cells are missing values, as pandas reads them.
                convert_options=pacsv.ConvertOptions(
                    column_types=dict(types), strings_can_be_null=True
                ),
            )
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                raise IngestError(f"csv source {self.path} is empty") from exc
            raise self._conflict(exc, [], types) from exc
        except (pa.ArrowException, OSError) as exc:
            raise IngestError(f"cannot read csv source {self.path}: {exc}") from exc

    def _conflict(
        self, exc: pa.ArrowInvalid, names: list[str], types: Mapping[str, pa.DataType]
    ) -> IngestError:
        match = _CONVERSION_ERROR.match(str(exc))
        if match is None or int(match[1]) >= len(names):
            return IngestError(f"cannot read csv source {self.path}: {exc}")
        column = names[int(match[1])]
        return CsvTypeConflict(self.path, column, types[column], match[2])

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except pd.errors.EmptyDataError as exc:
            raise IngestError(f"csv source {self.path} is empty") from exc
        except (ValueError, OSError) as exc:  # parser, encoding and file-system errors
            raise IngestError(f"cannot read csv source {self.path}: {exc}") from exc


class CsvTypeConflict(IngestError):
    """A later block of a CSV holds a value the type fixed from its first block cannot take."""

    def __init__(self, path: str, column: str, current: pa.DataType, value: str) -> None:
        super().__init__(
            f"csv source {path}: column {column!r} was read as {current} from its first rows "
            f"but a later row holds {value!r}"
        )
        self.column, self.current, self.value = column, current, value


# pyarrow names the column by position and quotes the value it could not convert.
_CONVERSION_ERROR = re.compile(
    r"In CSV column #(\d+): CSV conversion error to .*?: invalid value '(.*)'"
)
# Types the snapshot keeps as pyarrow infers them; any other (timestamps, dates, times) is kept
# as text, as `pandas.read_csv` does, so a snapshot holds what the file says.
_KEPT_TYPES = (pa.types.is_int64, pa.types.is_float64, pa.types.is_boolean, pa.types.is_string)


class SourceShape(NamedTuple):
    """Rows and column names of a file, read from its metadata alone."""

    rows: int
    columns: list[str]


class ParquetSource(_FileSource):
    """A Parquet file."""

    model_config = ConfigDict(title="Parquet file")

    kind: Literal["parquet"] = "parquet"

    def _load(self) -> pd.DataFrame:
        with self._translated():
            return pd.read_parquet(self._existing())

    def iter_chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        """The rows, `rows` at a time (Parquet record batches): never the whole file in memory."""
        with self._translated():
            for batch in pq.ParquetFile(self._existing()).iter_batches(batch_size=rows):
                yield batch.to_pandas()

    def read_shape(self) -> SourceShape:
        """Rows and columns from the footer alone (a stored pandas index is not a column)."""
        with self._translated():
            metadata = pq.read_metadata(self._existing())
            schema = metadata.schema.to_arrow_schema()
        stored_index = (schema.pandas_metadata or {}).get("index_columns", [])
        columns = [name for name in schema.names if name not in stored_index]
        if metadata.num_rows == 0:
            raise IngestError(f"source {self.describe()} has no rows")
        check_columns(columns, self.describe())
        return SourceShape(rows=metadata.num_rows, columns=columns)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (pa.ArrowException, ValueError, OSError) as exc:
            raise IngestError(f"cannot read parquet source {self.path}: {exc}") from exc


class SqlSource(_Source):
    """A table, or the result of a query, in a database SQLAlchemy can reach."""

    model_config = ConfigDict(title="SQL table or query")

    kind: Literal["sql"] = "sql"
    url: SqlUrl
    table: str | None = Field(default=None, description="a table to read whole (or a query)")
    query: str | None = Field(default=None, description="a SELECT to read (or a table)")

    @model_validator(mode="after")
    def _check_one_of(self) -> SqlSource:
        if bool(self.table) == bool(self.query):
            given = "both" if self.table else "neither"
            raise ValueError(f"a sql source needs exactly one of table or query ({given} given)")
        return self

    def describe(self) -> str:
        """The URL without its password, and the table (or `query`)."""
        return f"{safe_url(self.url)}#{self.table or 'query'}"

    def _load(self) -> pd.DataFrame:
        with self._connection() as connection:
            if self.table:
                return pd.read_sql_table(self.table, connection)
            return pd.read_sql_query(sa.text(str(self.query)), connection)

    def iter_chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        """The rows, `rows` at a time, from one connection: never the whole result in memory."""
        with self._connection() as connection:
            statement: sa.Select[Any] | sa.TextClause = (
                sa.select(sa.literal_column("*")).select_from(sa.table(self.table))
                if self.table
                else sa.text(str(self.query))
            )
            yield from pd.read_sql(statement, connection, chunksize=rows)

    def count_rows(self) -> int:
        """How many rows a whole read would return, counted by the database."""
        with self._connection() as connection:
            statement = (
                sa.select(sa.func.count()).select_from(sa.table(str(self.table)))
                if self.table
                else sa.text(f"SELECT COUNT(*) FROM ({self.query}) AS counted")
            )
            return int(connection.execute(statement).scalar_one())

    @contextmanager
    def _connection(self) -> Iterator[sa.Connection]:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as connection:
                if self.table and not sa.inspect(connection).has_table(self.table):
                    raise IngestError(
                        f"table {self.table!r} not found in database {safe_url(self.url)}"
                    )
                yield connection
        except sa.exc.SQLAlchemyError as exc:
            raise IngestError(f"cannot read sql source {self.describe()}: {exc}") from exc
        finally:
            engine.dispose()


Source = Annotated[CsvSource | ParquetSource | SqlSource, Field(discriminator="kind")]

_FILE_KINDS: dict[str, type[CsvSource] | type[ParquetSource]] = {
    ".csv": CsvSource,
    ".parquet": ParquetSource,
    ".pq": ParquetSource,
}


def source_for_path(path: str | Path) -> CsvSource | ParquetSource:
    """The file source a path names, its kind told by the suffix (.csv, .parquet or .pq)."""
    kind = _FILE_KINDS.get(Path(path).suffix.lower())
    if kind is None:
        known = ", ".join(_FILE_KINDS)
        raise IngestError(f"cannot tell the format of {path}: its name must end in {known}")
    return kind(path=str(path))


def recent_rows(frame: pd.DataFrame, window: WindowConfig) -> pd.DataFrame:
    """The rows inside a training window: the last `days` before the newest row, or last `rows`."""
    if window.time_column not in frame.columns:
        raise IngestError(f"training_window.time_column {window.time_column!r} is not in the data")
    clock = pd.to_datetime(frame[window.time_column], errors="coerce")
    if clock.isna().all():
        raise IngestError(f"training_window.time_column {window.time_column!r} has no timestamps")
    order = clock.argsort(kind="stable")
    if window.rows is not None:
        return frame.iloc[order[-window.rows :]].reset_index(drop=True)
    if window.days is None:
        raise IngestError("training_window needs one of days or rows")
    start = clock.max() - pd.Timedelta(days=window.days)
    return frame.loc[clock > start].reset_index(drop=True)
