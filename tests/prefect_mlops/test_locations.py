"""Sources and destinations as a person types them: a file path or a SQLAlchemy URL."""

from __future__ import annotations

import pytest

from prefect_mlops.destinations import CsvDestination, ParquetDestination, SqlDestination
from prefect_mlops.errors import ConfigError
from prefect_mlops.locations import parse_destination, parse_source
from prefect_mlops.sources import CsvSource, ParquetSource, SqlSource


def test_file_paths_are_told_apart_by_their_suffix() -> None:
    assert parse_source("data/new.csv") == CsvSource(path="data/new.csv")
    assert parse_source("data/new.PARQUET") == ParquetSource(path="data/new.PARQUET")
    assert parse_destination("out/scores.csv") == CsvDestination(path="out/scores.csv")
    assert parse_destination("out/scores.pq") == ParquetDestination(path="out/scores.pq")


def test_sql_urls_take_their_table_or_query() -> None:
    table = parse_source("sqlite:///landing.db", table="rows")
    assert table == SqlSource(url="sqlite:///landing.db", table="rows")
    query = parse_source("sqlite:///landing.db", query="SELECT * FROM rows")
    assert isinstance(query, SqlSource) and query.query == "SELECT * FROM rows"
    written = parse_destination("sqlite:///scores.db", table="scores")
    assert written == SqlDestination(url="sqlite:///scores.db", table="scores")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_source("data/new.txt"), "--source: cannot tell the format"),
        (lambda: parse_source("data/new.csv", table="t"), "apply to a SQL URL"),
        (lambda: parse_source("sqlite:///x.db"), "exactly one of table or query"),
        (lambda: parse_destination("out/scores.json"), "--destination: cannot tell the format"),
        (lambda: parse_destination("sqlite:///x.db"), "name the table with --destination-table"),
        (lambda: parse_destination("out.csv", table="t"), "applies to a SQL URL"),
    ],
)
def test_each_mistake_is_named_by_its_option(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()


def test_a_bad_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match=r"--source: .*not a SQLAlchemy URL") as refused:
        parse_source("no-such-dialect://user:s3cret@host/db", table="t")
    assert "s3cret" not in str(refused.value)
