"""The model's input schema, derived from its MLflow signature, and strict request validation.

A feature the trained pipeline imputes (optional in the signature) takes null, and a request may
leave its column out: it reads as all-null. A feature it cannot impute must be sent, non-null.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Annotated, Any

import orjson
from mlflow.models import ModelSignature
from mlflow.types import ColSpec
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    create_model,
)

from serving.errors import InputError

FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Columns = dict[str, list[Any]]
# Columns a request may name beyond the signature's before it is refused unread: enough to
# report a few extras by name, few enough that checking names stays trivial.
EXTRA_COLUMNS = 16
# /predict bodies above this size have their rows counted before validation (~1,000 rows).
PRECOUNT_BYTES = 256 * 1024


def _bounded_int(bits: int) -> Any:
    """A strict integer that fits a signed `bits`-bit column, refused by name otherwise."""
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def in_range(value: Any) -> Any:
        # orjson reads an integer beyond 64 bits as a float: report the range, not the type.
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if integral and not isinstance(value, bool) and not low <= value <= high:
            shown = value if isinstance(value, int) else f"{value:.0f}"
            raise ValueError(f"{shown} does not fit a {bits}-bit integer ({low}..{high})")
        return value

    return Annotated[StrictInt, BeforeValidator(in_range)]


# MLflow column types -> (strict pydantic type, Open Inference Protocol datatype)
_TYPES: dict[str, tuple[Any, str]] = {
    "double": (FiniteFloat, "FP64"),
    "float": (FiniteFloat, "FP32"),
    "long": (_bounded_int(64), "INT64"),
    "integer": (_bounded_int(32), "INT32"),
    "boolean": (StrictBool, "BOOL"),
    "string": (StrictStr, "BYTES"),
    "datetime": (datetime, "BYTES"),  # ISO-8601 text on the wire
}


class ColumnSpec(BaseModel):
    """One input column: its name, MLflow type and whether it must be sent, non-null (False:
    the pipeline imputes it; null or left out, it is missing)."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: str
    required: bool = True

    @property
    def python_type(self) -> Any:
        base = _TYPES[self.type][0]
        if self.required:
            return base
        if base is FiniteFloat:  # NaN is how pandas and MLflow's clients write "missing"
            return Annotated[FiniteFloat | None, BeforeValidator(_nan_as_none)]
        return base | None

    @property
    def record_field(self) -> Any:
        """The field of a record: required, or null when left out (and not required in the
        JSON schema) for a feature the pipeline imputes."""
        return Field(alias=self.name) if self.required else Field(default=None, alias=self.name)

    @property
    def datatype(self) -> str:
        return _TYPES[self.type][1]


class InputSchema:
    """The columns a model accepts and the validators built from them (once per model)."""

    def __init__(self, columns: list[ColumnSpec], max_rows: int = 100_000) -> None:
        self.columns = columns
        self.max_rows = max_rows
        self.names = [c.name for c in columns]
        self.columns_by_name = {c.name: c for c in columns}
        self.required_names = [c.name for c in columns if c.required]
        self._column_adapters = {
            c.name: TypeAdapter(list[c.python_type])  # type: ignore[name-defined]
            for c in columns
        }
        fields: dict[str, Any] = {
            f"c{i}": (c.python_type, c.record_field) for i, c in enumerate(columns)
        }
        self.row_model: type[BaseModel] = create_model(
            "Row", __config__=ConfigDict(extra="forbid", populate_by_name=False), **fields
        )
        self._rows_adapter = TypeAdapter(list[self.row_model])  # type: ignore[name-defined]
        self._fields = list(fields)
        self.predict_request: type[BaseModel] = create_model(
            "PredictRequest",
            __config__=ConfigDict(extra="forbid"),
            records=(list[self.row_model], Field(min_length=1, max_length=max_rows)),  # type: ignore[name-defined]
        )

    @classmethod
    def from_signature(
        cls, signature: ModelSignature | None, max_rows: int = 100_000
    ) -> InputSchema:
        """Columns of a column-based signature; tensor signatures are not served."""
        if signature is None or signature.inputs is None:
            raise InputError("model", "the model has no input signature to validate against")
        specs = []
        for spec in signature.inputs.inputs:
            if not isinstance(spec, ColSpec) or spec.name is None:
                raise InputError("model", "only column-based (DataFrame) signatures are served")
            kind = str(spec.type.name if hasattr(spec.type, "name") else spec.type)
            if kind not in _TYPES:
                raise InputError(spec.name, f"column type {kind!r} is not supported")
            specs.append(ColumnSpec(name=spec.name, type=kind, required=spec.required))
        return cls(specs, max_rows)

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of one record, for /metadata and the OpenAPI document: only the features
        the model cannot impute are required."""
        return self.row_model.model_json_schema(by_alias=True)

    def column(self, name: str) -> ColumnSpec:
        return self.columns_by_name[name]

    def validate_records(self, records: Any, where: str = "records") -> Columns:
        """Validate a list of `{column: value}` objects and return them column by column."""
        if not isinstance(records, list):
            raise InputError(where, "expected a list of records")
        self._check_rows(where, len(records))
        try:
            rows = self._rows_adapter.validate_python(records)
        except ValidationError as exc:
            raise _input_error(exc, where) from None
        return self._columns_of(rows)

    def validate_predict_request(self, body: bytes) -> Columns:
        """Validate a raw `{"records": [...]}` body in one pass (the /predict fast path).

        A large body is decoded first (orjson, linear and fast) so that too many rows are refused
        before any row is validated.
        """
        if len(body) > PRECOUNT_BYTES:
            self.check_row_limit("body.records", _records_count(body))
        try:
            request = self.predict_request.model_validate_json(body)
        except ValidationError as exc:
            raise _input_error(exc, "body") from None
        return self._columns_of(request.records)  # type: ignore[attr-defined]

    def _check_rows(self, where: str, count: int) -> None:
        if count == 0:
            raise InputError(where, "the batch is empty; send at least one row")
        self.check_row_limit(where, count)

    def check_row_limit(self, where: str, count: int) -> None:
        """Refuse more rows than `max_rows` (before they are parsed or validated)."""
        if count > self.max_rows:
            raise InputError(where, f"{count} rows exceed the limit of {self.max_rows}")

    def validate_columns(self, columns: dict[str, Any], where: str = "inputs") -> Columns:
        """Validate `{column: [values]}` and return it with every column checked and typed (an
        imputed feature's column left out as all-null)."""
        self.check_names(list(columns), where)
        lengths = {len(v) if isinstance(v, list | tuple) else -1 for v in columns.values()}
        if -1 in lengths:
            bad = next(k for k, v in columns.items() if not isinstance(v, list | tuple))
            raise InputError(f"{where}.{bad}", "expected a list of values")
        if len(lengths) > 1:
            raise InputError(where, f"columns have different lengths {sorted(lengths)}")
        rows = lengths.pop() if lengths else 0  # no column at all: no row either
        self._check_rows(where, rows)
        typed: Columns = {}
        for name in self.names:
            if name not in columns:  # an imputed feature (check_names refused the others)
                typed[name] = [None] * rows
                continue
            try:
                typed[name] = self._column_adapters[name].validate_python(columns[name])
            except ValidationError as exc:
                raise _input_error(exc, f"{where}.{name}") from None
        return typed

    def check_names(self, names: list[str], where: str) -> None:
        """Refuse too many, extra and duplicated columns, and missing ones the model does not
        impute, naming them (linear time)."""
        limit = len(self.names) + EXTRA_COLUMNS
        if len(names) > limit:
            raise InputError(
                where,
                f"{len(names)} columns exceed the limit of {limit} "
                f"(the model takes {len(self.names)})",
            )
        given = set(names)
        missing = [n for n in self.required_names if n not in given]
        extra = [n for n in names if n not in self.columns_by_name]
        duplicated = sorted(n for n, count in Counter(names).items() if count > 1)
        if missing:
            raise InputError(
                where, f"missing columns {missing}: the model does not impute these features"
            )
        if extra:
            raise InputError(where, f"unexpected columns {extra}; the model takes {self.names}")
        if duplicated:
            raise InputError(where, f"duplicated columns {duplicated}")

    def _columns_of(self, rows: list[BaseModel]) -> Columns:
        return {
            name: [getattr(row, field) for row in rows]
            for name, field in zip(self.names, self._fields, strict=True)
        }


def _records_count(body: bytes) -> int:
    """How many records a `{"records": [...]}` body holds (0 when it is not that shape)."""
    try:
        records = orjson.loads(body).get("records")
    except (orjson.JSONDecodeError, AttributeError):
        return 0  # malformed: the validation that follows names the problem
    return len(records) if isinstance(records, list) else 0


def _nan_as_none(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _input_error(exc: ValidationError, where: str) -> InputError:
    """The first validation problem, with its location written as a field path."""
    first = exc.errors(include_url=False)[0]
    path, loc = where, first["loc"]
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    more = exc.error_count() - 1
    message = first["msg"]
    missing = first.get("input", 0)
    value_error = first["type"] not in ("model_type", "list_type", "dict_type", "missing")
    if value_error and (missing is None or (isinstance(missing, float) and math.isnan(missing))):
        message = "a missing value is not accepted here: the model does not impute this feature"
    elif first["type"] == "missing" and len(loc) > 1 and isinstance(loc[-2], int):
        message = "a record must have this feature: the model does not impute it"
    message += f" (and {more} more problems)" if more else ""
    return InputError(path, message)
