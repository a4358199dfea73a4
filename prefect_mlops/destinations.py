"""Data destinations: a Parquet or CSV file or a SQL table, written in chunks, all or nothing."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from prefect_mlops.errors import IngestError
from prefect_mlops.sources import Source, SqlSource, SqlUrl, safe_url

# Appends one chunk of rows to the destination opened by `open_writer`.
ChunkWriter = Callable[[pd.DataFrame], None]


class _Destination(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str

    @abstractmethod
    def describe(self) -> str:
        """Where the rows go, safe to log (no credentials)."""

    @abstractmethod
    def open_writer(self) -> AbstractContextManager[ChunkWriter]:
        """A writer of chunks; nothing is visible to readers until the block ends without error."""


class _FileDestination(_Destination):
    path: str = Field(min_length=1, description="file path, replaced when scoring completes")

    def describe(self) -> str:
        """The file's path."""
        return self.path

    @contextmanager
    def _partial_file(self) -> Iterator[Path]:
        """A hidden file beside the target that replaces it once complete; removed on failure."""
        final = Path(self.path)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.partial")
        partial.unlink(missing_ok=True)  # left by a killed run: never append to it
        try:
            yield partial
            if partial.exists():  # no chunk, no file
                partial.replace(final)
        finally:
            partial.unlink(missing_ok=True)


class ParquetDestination(_FileDestination):
    """A Parquet file, replaced as a whole; every chunk keeps the first chunk's column types."""

    model_config = ConfigDict(title="Parquet file")  # the option's name in the Prefect UI's form

    kind: Literal["parquet"] = "parquet"

    @contextmanager
    def open_writer(self) -> Iterator[ChunkWriter]:
        """A writer of chunks into one Parquet file that appears only when complete."""
        with self._partial_file() as partial:
            writer: pq.ParquetWriter | None = None

            def write(frame: pd.DataFrame) -> None:
                nonlocal writer
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(partial, table.schema)
                writer.write_table(self._conform(table, writer.schema))

            try:
                yield write
            finally:
                if writer is not None:
                    writer.close()

    def _conform(self, table: pa.Table, schema: pa.Schema) -> pa.Table:
        if table.schema.names != schema.names:
            raise IngestError(
                f"a chunk for parquet destination {self.path} has columns {table.schema.names}, "
                f"the file has {schema.names}"
            )
        try:
            return table.cast(schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            pairs = zip(table.schema, schema, strict=True)
            changed = [mine.name for mine, theirs in pairs if mine.type != theirs.type]
            raise IngestError(
                f"a chunk for parquet destination {self.path} changes the type of column(s) "
                f"{changed}: {exc}"
            ) from exc


class CsvDestination(_FileDestination):
    """A CSV file with a header row, replaced as a whole."""

    model_config = ConfigDict(title="CSV file")

    kind: Literal["csv"] = "csv"

    @contextmanager
    def open_writer(self) -> Iterator[ChunkWriter]:
        """A writer of chunks into one CSV file that appears only when complete."""
        with self._partial_file() as partial:

            def write(frame: pd.DataFrame) -> None:
                frame.to_csv(partial, mode="a", header=not partial.exists(), index=False)

            yield write


class SqlDestination(_Destination):
    """A table in a database SQLAlchemy can reach, appended to (created if absent)."""

    model_config = ConfigDict(title="SQL table")

    kind: Literal["sql"] = "sql"
    url: SqlUrl
    table: str = Field(min_length=1, description="appended to; created if absent")

    def describe(self) -> str:
        """The URL without its password, and the table."""
        return f"{safe_url(self.url)}#{self.table}"

    @contextmanager
    def open_writer(self) -> Iterator[ChunkWriter]:
        """A writer of chunks in one transaction: every chunk's rows commit, or none do."""
        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as connection:

                def write(frame: pd.DataFrame) -> None:
                    # Only a refused chunk is translated: connection failures stay transient.
                    try:
                        frame.to_sql(self.table, connection, if_exists="append", index=False)
                    except sa.exc.SQLAlchemyError as exc:
                        raise IngestError(
                            f"cannot append to sql destination {self.describe()}: {exc}"
                        ) from exc

                yield write
        finally:
            engine.dispose()


Destination = Annotated[
    ParquetDestination | CsvDestination | SqlDestination, Field(discriminator="kind")
]


def same_sqlite_file(source: Source, destination: Destination) -> bool:
    """Whether both ends are one SQLite database file (read and written at once: locked)."""
    if not isinstance(source, SqlSource) or not isinstance(destination, SqlDestination):
        return False
    ends = [sa.engine.make_url(u) for u in (source.url, destination.url)]
    if not all(u.get_backend_name() == "sqlite" and u.database for u in ends):
        return False
    return Path(str(ends[0].database)).resolve() == Path(str(ends[1].database)).resolve()
