"""Where rows come from and go to, as a person types it: a file path or a SQLAlchemy URL.

`mlops score --source data/new.csv --destination sqlite:///scores.db --destination-table scores`
becomes the project's `Source` and `Destination` models; every mistake is named by its option.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError

from prefect_mlops.destinations import CsvDestination, Destination, ParquetDestination
from prefect_mlops.errors import ConfigError, IngestError
from prefect_mlops.sources import Source, source_for_path

T = TypeVar("T")

_DESTINATION_KINDS: dict[str, type[CsvDestination] | type[ParquetDestination]] = {
    ".csv": CsvDestination,
    ".parquet": ParquetDestination,
    ".pq": ParquetDestination,
}


def is_url(text: str) -> bool:
    """A SQLAlchemy URL (`dialect+driver://...`) rather than a file path."""
    return "://" in text


def parse_source(text: str, table: str | None = None, query: str | None = None) -> Source:
    """A CSV or Parquet path (told by its suffix), or a SQL URL with a table or a query."""
    if not is_url(text):
        if table or query:
            raise ConfigError("--source-table and --source-query apply to a SQL URL, not a file")
        try:
            return source_for_path(text)
        except IngestError as exc:
            raise ConfigError(f"--source: {exc}") from exc
    raw = {"kind": "sql", "url": text, "table": table, "query": query}
    return _validated(TypeAdapter(Source), raw, "--source")


def parse_destination(text: str, table: str | None = None) -> Destination:
    """A CSV or Parquet path (told by its suffix), or a SQL URL with the table to append to."""
    if not is_url(text):
        if table:
            raise ConfigError("--destination-table applies to a SQL URL, not a file")
        kind = _DESTINATION_KINDS.get(Path(text).suffix.lower())
        if kind is None:
            known = ", ".join(_DESTINATION_KINDS)
            raise ConfigError(
                f"--destination: cannot tell the format of {text}: its name must end in {known} "
                "(or give a SQL URL and --destination-table)"
            )
        return kind(path=text)
    if not table:
        raise ConfigError("--destination is a SQL URL: name the table with --destination-table")
    raw = {"kind": "sql", "url": text, "table": table}
    return _validated(TypeAdapter(Destination), raw, "--destination")


def _validated(adapter: TypeAdapter[T], raw: Mapping[str, str | None], option: str) -> T:
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        # Only the messages: the input itself may hold a password.
        problems = "; ".join(err["msg"] for err in exc.errors())
        raise ConfigError(f"{option}: {problems}") from None
