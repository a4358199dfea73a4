"""`mlflow models serve` request formats on `POST /invocations`: JSON (four layouts) or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import orjson

from serving.errors import InputError, UnsupportedMediaTypeError
from serving.schema import Columns, ColumnSpec, InputSchema

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON_TYPE, CSV_TYPE = "application/json", "text/csv"  # what `mlflow models serve` reads
# CSV fields read as missing, as pandas' read_csv (and so `mlflow models serve`) reads them.
CSV_NULLS = frozenset(
    {"", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "null", "NULL", "None", "<NA>"}
)
CSV_TRUE, CSV_FALSE = frozenset({"true", "True", "TRUE"}), frozenset({"false", "False", "FALSE"})
InvocationParser = Callable[[bytes, InputSchema], Columns]


def parse_json(body: bytes) -> Any:
    """Decode a JSON body, naming the position of a syntax error."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:  # MLflow's clients write NaN for missing values, which only the stdlib parser reads
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError("body", f"malformed JSON: {exc}") from None


def invocation_parser(content_type: str | None) -> InvocationParser:
    """How to read an `/invocations` body of this content type (JSON when none is given)."""
    media = (content_type or JSON_TYPE).partition(";")[0].strip().lower()
    if media == CSV_TYPE:
        return columns_from_csv
    if media == JSON_TYPE:
        return lambda body, schema: columns_from_invocation(parse_json(body), schema)
    raise UnsupportedMediaTypeError(
        "content-type", f"{media!r} is not supported; send {JSON_TYPE} or {CSV_TYPE}"
    )


def columns_from_csv(body: bytes, schema: InputSchema) -> Columns:
    """Validated columns of a CSV body: a header row of column names, then one row per record."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError("csv", f"the body is not UTF-8 text: {exc}") from None
    # Refused before parsing: more lines than rows allowed (an upper bound on the rows, as a
    # quoted field may span lines), then the header alone, so a huge header is never split out.
    lines = text.count("\n") + (not text.endswith("\n"))
    if lines > schema.max_rows + 1:
        raise InputError(
            "csv", f"{lines - 1} data lines exceed the limit of {schema.max_rows} rows"
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next((r for r in reader if r), None)
        if header is None:
            raise InputError("csv", "the body is empty; expected a header row of column names")
        schema.check_names(header, "csv.header")
        data = [r for r in reader if r]
    except csv.Error as exc:
        raise InputError("csv", f"malformed CSV: {exc}") from None
    for index, values in enumerate(data):
        if len(values) != len(header):
            raise InputError(
                f"csv.data[{index}]",
                f"expected {len(header)} values (one per header column), got {len(values)}",
            )
    fields = dict(zip(header, zip(*data, strict=True), strict=False)) if data else {}
    columns = {
        name: _csv_values(schema.column(name), list(fields.get(name, ())), f"csv.{name}")
        for name in header
    }
    return schema.validate_columns(columns, where="csv")


def _csv_values(spec: ColumnSpec, fields: list[str], where: str) -> list[Any]:
    """CSV text as the values the signature's type takes (None where pandas reads NaN)."""
    read = _CSV_READERS.get(spec.type)
    values: list[Any] = []
    for index, text in enumerate(fields):
        if text in CSV_NULLS:
            values.append(None)
        elif read is None:
            values.append(text)
        else:
            try:
                values.append(read(text))
            except ValueError:
                raise InputError(f"{where}[{index}]", f"{text!r} is not a {spec.type}") from None
    return values


def _csv_int(text: str) -> int:
    try:
        return int(text)  # exact, however large: the schema names a value out of range
    except ValueError:
        number = float(text)  # "3.0" is how pandas writes an integer column that had gaps
    if not number.is_integer():
        raise ValueError(text)
    return int(number)


def _csv_bool(text: str) -> bool:
    if text in CSV_TRUE or text in CSV_FALSE:
        return text in CSV_TRUE
    raise ValueError(text)


_CSV_READERS: dict[str, Callable[[str], Any]] = {
    "double": float,
    "float": float,
    "long": _csv_int,
    "integer": _csv_int,
    "boolean": _csv_bool,
}


def columns_from_invocation(payload: Any, schema: InputSchema) -> Columns:
    """Validated columns of an MLflow scoring request, in any of its four formats."""
    if not isinstance(payload, dict):
        raise InputError("body", f"expected a JSON object with one of {list(MLFLOW_FORMATS)}")
    formats = [k for k in MLFLOW_FORMATS if k in payload]
    unknown = sorted(set(payload) - {*MLFLOW_FORMATS, "params"})
    if len(formats) != 1 or unknown:
        raise InputError(
            "body", f"expected exactly one of {list(MLFLOW_FORMATS)}, got keys {sorted(payload)}"
        )
    key = formats[0]
    data = payload[key]
    if key == "dataframe_split":
        return _columns_from_split(data, schema)
    if isinstance(data, dict):
        return schema.validate_columns(data, where=key)
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return schema.validate_records(data, where=key)
    raise InputError(key, "expected a list of records or an object of columns")


def _columns_from_split(data: Any, schema: InputSchema) -> Columns:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise InputError("dataframe_split", "expected an object with 'columns' and 'data'")
    extra = sorted(set(data) - {"columns", "data", "index"})
    if extra:
        raise InputError("dataframe_split", f"unexpected keys {extra}")
    names = data.get("columns")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError("dataframe_split.columns", "expected a list of column names")
    schema.check_names(names, "dataframe_split.columns")
    rows = data["data"]
    schema.check_row_limit("dataframe_split.data", len(rows))
    if not all(type(row) is list for row in rows):
        index = next(i for i, row in enumerate(rows) if type(row) is not list)
        raise InputError(f"dataframe_split.data[{index}]", "expected a list of values")
    if rows and set(map(len, rows)) != {len(names)}:
        index = next(i for i, row in enumerate(rows) if len(row) != len(names))
        raise InputError(
            f"dataframe_split.data[{index}]", f"expected {len(names)} values, one per column"
        )
    transposed = zip(*rows, strict=False) if rows else ([] for _ in names)  # lengths checked
    return schema.validate_columns(
        dict(zip(names, map(list, transposed), strict=True)), where="dataframe_split.data"
    )
