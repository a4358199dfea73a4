"""Validate: Great Expectations suites, checkpoints and the data gate that guard every batch.

Each pipeline config owns two suites in the file context under `Settings.gx_root`:

- `<suite>.features`: the feature columns only, so it also applies at scoring and monitoring time,
  when the target is absent;
- `<suite>.training`: the target, the table's columns and its row count.

The checkpoint `<suite>.training` runs both; `<suite>.scoring` runs the features suite alone.
`mlops suite init` writes a starting point profiled from reference data (`init_suites`); a person
reviews and commits the JSON under `great_expectations/`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Literal

import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.checkpoint import Checkpoint
from great_expectations.checkpoint.checkpoint import CheckpointResult
from great_expectations.compatibility.pydantic import ValidationError as GXModelError
from great_expectations.core import ExpectationSuite
from great_expectations.core.batch_definition import BatchDefinition
from great_expectations.core.expectation_validation_result import ExpectationValidationResult
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.core.validation_definition import ValidationDefinition
from great_expectations.data_context import FileDataContext, get_context
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.datasource.fluent import PandasDatasource
from great_expectations.exceptions import DataContextError
from great_expectations.execution_engine import pandas_execution_engine
from great_expectations.expectations.expectation import Expectation
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from prefect_mlops.config import PipelineConfig, TaskType
from prefect_mlops.errors import DataQualityError, DataValidationError
from prefect_mlops.io import read_parquet, write_parquet_atomic
from prefect_mlops.names import artifact_key
from prefect_mlops.results import FailedExpectation, Snapshot, ValidationSummary
from prefect_mlops.settings import Settings
from tasks.features import infer_schema
from tasks.policies import IO_RETRIES, RELEASES_MEMORY

Purpose = Literal["training", "scoring"]

DATASOURCE_NAME = "pandas"
BATCH_DEFINITION_NAME = "whole-dataframe"
DATA_DOCS_SITE = "local_site"

# Dtype names for typed columns; the Python names ("int", "float", "str") check the values of
# object columns one by one, which GX 1.24 does for object dtype instead of comparing the dtype.
INT_TYPES = [
    "int",
    *("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"),
    *("Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype"),
    *("UInt8Dtype", "UInt16Dtype", "UInt32Dtype", "UInt64Dtype"),
]
NUMERIC_TYPES = [
    *INT_TYPES,
    "float",
    "float16",
    "float32",
    "float64",
    "Float32Dtype",
    "Float64Dtype",
]
TEXT_TYPES = ["str", "object", "StringDtype", "CategoricalDtype"]
BOOL_TYPES = ["bool", "BooleanDtype"]

# How far a profiled suite trusts its reference data. Ranges come from the whole reference, so
# seasonal subsets pass; a margin on each side tolerates values a little beyond what was seen.
RANGE_MARGIN = 0.1
# Models one-hot encode with handle_unknown="ignore": a few unseen categories are tolerable.
VALUE_SET_MOSTLY = 0.99
# A category list longer than this is an identifier, not a category: its value set is not pinned.
MAX_VALUE_SET = 1000
# Nullable columns may carry up to twice the reference null fraction plus two points.
NULL_FRACTION_FACTOR = 2.0
NULL_FRACTION_SLACK = 0.02
# A training batch under a tenth of the reference is truncated; over 100x, something duplicated.
ROW_COUNT_MIN_FRACTION = 0.1
ROW_COUNT_MAX_FACTOR = 100
EXAMPLES_SHOWN = 3


def suite_names(config: PipelineConfig) -> tuple[str, str]:
    """Names of the features suite and the training suite of a config."""
    return f"{config.validation.suite}.features", f"{config.validation.suite}.training"


def checkpoint_name(config: PipelineConfig, purpose: Purpose) -> str:
    """Name of the checkpoint run for training or for scoring data."""
    return f"{config.validation.suite}.{purpose}"


def open_context(settings: Settings) -> FileDataContext:
    """The file Data Context under `settings.gx_root`, with GX's tqdm progress bars off."""
    # GX hashes every in-memory batch under HASH_THRESHOLD bytes to mark it with a fingerprint,
    # once per suite: 0.4 s each at 1M rows. Every batch validated here is already named by its
    # content fingerprint (the snapshot's, in the run name), so GX's second one is skipped.
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = get_context(mode="file", context_root_dir=str(settings.gx_root))
    # Validators read this flag when they are built; without it tqdm writes to stderr per run.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def profile_expectations(
    frame: pd.DataFrame, config: PipelineConfig
) -> dict[str, list[Expectation]]:
    """A starting suite per name, profiled from reference data, for a person to review.

    Features: each column exists, has a type of its kind, is not null (allowing for the nulls
    seen), numeric values lie in the observed range widened by `RANGE_MARGIN` of the span on
    each side, categories come from the observed set (`mostly=VALUE_SET_MOSTLY`). The time
    column of a time split must exist and be filled. Training: the target exists, is never null
    and is numeric (regression) or a known class (classification); the table has the reference
    columns (exactly, when features are inferred, since a new column would silently become a
    feature) and between `ROW_COUNT_MIN_FRACTION` and `ROW_COUNT_MAX_FACTOR` times its rows.
    """
    if config.target not in frame.columns:
        raise DataQualityError(
            f"reference data for suite {config.validation.suite!r} needs the target column "
            f"{config.target!r}; columns are {list(frame.columns)}"
        )
    schema = infer_schema(frame, config)
    features: list[Expectation] = []
    for column in schema.numeric:
        features += _column_basics(frame[column], NUMERIC_TYPES)
        features += _numeric_range(frame[column])
    for column in schema.categorical:
        features += _column_basics(frame[column], _category_types(frame[column]))
        features += _value_set(frame[column])
    for column in schema.datetime:
        features += _column_basics(frame[column], None)
    time_column = config.split.time_column if config.split.strategy == "time" else None
    if time_column and time_column not in schema.features:  # the split needs every timestamp
        features += [
            gxe.ExpectColumnToExist(column=time_column),
            gxe.ExpectColumnValuesToNotBeNull(column=time_column),
        ]

    target = frame[config.target]
    training: list[Expectation] = [
        gxe.ExpectColumnToExist(column=config.target),
        gxe.ExpectColumnValuesToNotBeNull(column=config.target),
    ]
    if config.task == TaskType.regression:
        training.append(
            gxe.ExpectColumnValuesToBeInTypeList(column=config.target, type_list=NUMERIC_TYPES)
        )
    else:
        training.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=config.target, value_set=_observed_values(target)
            )
        )
    required = [*schema.features, config.target, *([time_column] if time_column else [])]
    training += [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[str(c) for c in frame.columns] if config.features is None else required,
            exact_match=config.features is None,
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=max(1, math.floor(len(frame) * ROW_COUNT_MIN_FRACTION)),
            max_value=len(frame) * ROW_COUNT_MAX_FACTOR,
        ),
    ]
    features_suite, training_suite = suite_names(config)
    return {features_suite: features, training_suite: training}


def _column_basics(values: pd.Series, types: list[str] | None) -> list[Expectation]:
    column = str(values.name)
    found: list[Expectation] = [gxe.ExpectColumnToExist(column=column)]
    if types is not None:
        found.append(gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=types))
    null_fraction = float(values.isna().mean())
    if null_fraction == 0.0:
        found.append(gxe.ExpectColumnValuesToNotBeNull(column=column))
    else:
        tolerated = null_fraction * NULL_FRACTION_FACTOR + NULL_FRACTION_SLACK
        mostly = math.floor((1.0 - tolerated) * 1000) / 1000
        if mostly > 0:
            found.append(gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=mostly))
    return found


def _category_types(values: pd.Series) -> list[str]:
    if pd.api.types.is_bool_dtype(values):
        return BOOL_TYPES
    if pd.api.types.is_integer_dtype(values):
        return INT_TYPES
    if pd.api.types.is_numeric_dtype(values):
        return NUMERIC_TYPES
    return TEXT_TYPES


def _numeric_range(values: pd.Series) -> list[Expectation]:
    observed = values.dropna()
    if observed.empty:
        return []
    low, high = float(observed.min()), float(observed.max())
    margin = RANGE_MARGIN * (high - low) if high > low else max(abs(low) * RANGE_MARGIN, 1.0)
    # Round outwards at a precision finer than the margin: readable bounds that still hold.
    scale = 10.0 ** max(0, 1 - math.floor(math.log10(margin)))
    min_value = math.floor((low - margin) * scale) / scale
    max_value = math.ceil((high + margin) * scale) / scale
    if pd.api.types.is_integer_dtype(values):
        min_value, max_value = math.floor(min_value), math.ceil(max_value)
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column=str(values.name), min_value=min_value, max_value=max_value
        )
    ]


def _value_set(values: pd.Series) -> list[Expectation]:
    observed = _observed_values(values)
    if len(observed) > MAX_VALUE_SET:
        return []
    return [
        gxe.ExpectColumnValuesToBeInSet(
            column=str(values.name), value_set=observed, mostly=VALUE_SET_MOSTLY
        )
    ]


def _observed_values(values: pd.Series) -> list[Any]:
    """Distinct non-null values as plain Python scalars (JSON-friendly), in a stable order."""
    return sorted(pd.unique(values.dropna()).tolist(), key=lambda v: (str(type(v)), v))


def init_suites(config: PipelineConfig, settings: Settings, reference: pd.DataFrame) -> list[str]:
    """(Re)create the config's suites, validation definitions and checkpoints from reference data.

    Returns what it wrote, e.g. "expectation suite bikeshare.features", "checkpoint
    bikeshare.scoring". Idempotent: existing objects are updated in place (their ids and the
    ids of unchanged expectations are kept), so re-running on the same data rewrites identical
    files.
    """
    context = open_context(settings)
    context.variables.save()  # persists progress_bars: off, for every later reader of the folder
    datasource = _pandas_datasource(context)
    definitions: dict[str, ValidationDefinition] = {}
    for name, expectations in profile_expectations(reference, config).items():
        suite = ExpectationSuite(name=name, expectations=expectations)
        _keep_expectation_ids(context, suite)
        suite = context.suites.add_or_update(suite)
        definition = ValidationDefinition(
            name=name, data=_whole_dataframe(datasource, name), suite=suite
        )
        definitions[name] = context.validation_definitions.add_or_update(definition)
    features_suite, training_suite = suite_names(config)
    members: dict[Purpose, list[str]] = {
        "training": [features_suite, training_suite],
        "scoring": [features_suite],
    }
    created = [f"expectation suite {name}" for name in definitions]
    created += [f"validation definition {name}" for name in definitions]
    for purpose, suites in members.items():
        checkpoint = Checkpoint(
            name=checkpoint_name(config, purpose),
            validation_definitions=[definitions[s] for s in suites],
            actions=[],  # Data Docs are built by validate_frame, per `validation.data_docs`
            # Counts and 20 examples per failed expectation: COMPLETE would list every unexpected
            # value in the stored result (8.5 MB for a 1M-row batch with a fifth of a column bad);
            # the quarantined batch keeps every row for inspection.
            result_format={"result_format": "SUMMARY"},
        )
        created.append(f"checkpoint {context.checkpoints.add_or_update(checkpoint).name}")
    return created


def _keep_expectation_ids(context: FileDataContext, suite: ExpectationSuite) -> None:
    """Give unchanged expectations their stored ids, so a re-run rewrites identical files.

    `suites.add_or_update` means to do this, but in GX 1.24 it compares expectations including
    their ids, so a freshly built expectation (id None) never matches and every id changes.
    """
    try:
        stored = context.suites.get(suite.name).expectations
    except DataContextError:
        return
    ids = {_expectation_key(e): e.id for e in stored}
    for expectation in suite.expectations:
        expectation.id = ids.get(_expectation_key(expectation))


def _expectation_key(expectation: Expectation) -> str:
    configuration = expectation.configuration.to_json_dict()
    configuration.pop("id", None)
    configuration["meta"] = configuration.get("meta") or None
    return json.dumps(configuration, sort_keys=True, default=str)


def _pandas_datasource(context: FileDataContext) -> PandasDatasource:
    try:
        return context.data_sources.get(DATASOURCE_NAME)  # type: ignore[return-value]
    except KeyError:
        return context.data_sources.add_pandas(DATASOURCE_NAME)


def _whole_dataframe(datasource: PandasDatasource, asset_name: str) -> BatchDefinition:
    try:
        asset = datasource.get_asset(asset_name)
    except LookupError:
        asset = datasource.add_dataframe_asset(asset_name)
    try:
        return asset.get_batch_definition(BATCH_DEFINITION_NAME)
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)


def validate_frame(
    frame: pd.DataFrame,
    config: PipelineConfig,
    settings: Settings,
    purpose: Purpose,
    batch_id: str,
) -> ValidationSummary:
    """Run the training or scoring checkpoint on a frame; quarantine the batch when it fails.

    A schema change (a missing, extra or retyped column) is reported as failed expectations,
    never raised. A missing suite or checkpoint raises `DataValidationError` naming the fix.
    """
    name = checkpoint_name(config, purpose)
    context = _existing_context(settings, name)
    try:
        checkpoint = context.checkpoints.get(name)
    except (DataContextError, GXModelError) as exc:  # GXModelError: its suite file is gone
        detail = " ".join(str(exc).split())
        raise DataValidationError(f"{_setup_hint(settings, name)} ({detail})") from exc
    run_id = RunIdentifier(run_name=f"{purpose}-{batch_id}")
    try:
        # Pass or fail alone is cheap (a third less at 1M rows): only a failing batch pays for
        # the checkpoint's detailed report, whose stored result replaces the quick one.
        result = _quick_pass(checkpoint, frame, run_id)
        if not result.success:
            result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
    finally:
        _forget_batches(context)
    docs_url = None
    if not result.success or config.validation.data_docs == "always":
        docs_url = build_data_docs(context, result)
    summary = _summarize(result, data_docs_url=docs_url)
    if not summary.success:
        summary = quarantine_batch(frame, summary, settings.quarantine_dir / batch_id)
    return summary


def _quick_pass(
    checkpoint: Checkpoint, frame: pd.DataFrame, run_id: RunIdentifier
) -> CheckpointResult:
    """The checkpoint's validation definitions with pass or fail per expectation only."""
    results = {}
    for definition in checkpoint.validation_definitions:
        result = definition.run(
            checkpoint_id=checkpoint.id,
            batch_parameters={"dataframe": frame},
            result_format="BOOLEAN_ONLY",
            run_id=run_id,
        )
        suite = ExpectationSuiteIdentifier(name=definition.suite.name)
        results[ValidationResultIdentifier(suite, run_id, result.batch_id)] = result
    return CheckpointResult(run_id=run_id, run_results=results, checkpoint_config=checkpoint)


def build_data_docs(context: FileDataContext, result: CheckpointResult | None = None) -> str | None:
    """Render the Data Docs site (only this result's pages and the index, when given); its URL."""
    identifiers: list[Any] | None = None
    if result is not None:
        identifiers = list(result.run_results)
        identifiers += [
            ExpectationSuiteIdentifier(name=r.suite_name) for r in result.run_results.values()
        ]
    context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=identifiers)
    sites = context.get_docs_sites_urls(site_name=DATA_DOCS_SITE)
    return sites[0]["site_url"] if sites else None


def _forget_batches(context: FileDataContext) -> None:
    """Drop the validated frame from GX's batch cache.

    The context is process-wide (GX's project manager keeps it), and its pandas execution engine
    caches every batch it loaded: without this the last validated frame (about 400 MiB at 1M
    rows) stays alive for the rest of the run.
    """
    manager = _pandas_datasource(context).get_execution_engine().batch_manager
    manager.reset_batch_cache()
    manager.batch_data_cache.clear()


def _setup_hint(settings: Settings, checkpoint: str) -> str:
    return (
        f"Great Expectations checkpoint {checkpoint!r} is not fully set up in {settings.gx_root}: "
        "run `mlops suite init --config <path>` with this pipeline's config to create its "
        "suites and checkpoints, then review and commit them"
    )


def _existing_context(settings: Settings, checkpoint: str) -> FileDataContext:
    # get_context(mode="file") scaffolds a new, empty project where none exists: refuse instead.
    if not (settings.gx_root / "great_expectations.yml").is_file():
        raise DataValidationError(_setup_hint(settings, checkpoint))
    return open_context(settings)


def _summarize(result: CheckpointResult, data_docs_url: str | None) -> ValidationSummary:
    """Wrap a checkpoint result: counts, and each failed expectation in words."""
    items = [item for run in result.run_results.values() for item in run.results]
    missing = {
        item.expectation_config.kwargs["column"]
        for item in items
        if item.expectation_config.type == "expect_column_to_exist" and not item.success
    }
    failed = [
        FailedExpectation(
            expectation=item.expectation_config.type,
            column=item.expectation_config.kwargs.get("column"),
            observed=describe_observed(item, missing_columns=missing),
        )
        for item in items
        if not item.success
    ]
    # Table-level findings first, then column by column, the column's existence before its values
    failed.sort(key=lambda f: (f.column is not None, f.column or "", _RANK.get(f.expectation, 9)))
    return ValidationSummary(
        success=bool(result.success),
        checkpoint=result.checkpoint_config.name,
        evaluated=sum(
            int(run.statistics["evaluated_expectations"]) for run in result.run_results.values()
        ),
        failed=failed,
        data_docs_url=data_docs_url,
    )


_RANK = {
    "expect_column_to_exist": 0,
    "expect_column_values_to_be_in_type_list": 1,
    "expect_column_values_to_not_be_null": 2,
}


def describe_observed(
    item: ExpectationValidationResult, missing_columns: set[str] | frozenset[str] = frozenset()
) -> str:
    """A short account of what a failed expectation saw, e.g. "3 unexpected values, e.g. ['x']"."""
    kind = item.expectation_config.type
    kwargs = item.expectation_config.kwargs
    result = item.result or {}
    observed = result.get("observed_value")
    error = _exception_message(item.exception_info or {})
    if kind == "expect_column_to_exist":
        return "column is missing"
    if error is not None:
        if kwargs.get("column") in missing_columns or "does not exist" in error:
            return "not evaluated: the column is missing"
        return f"not evaluated: {error.splitlines()[0]}"
    if kind == "expect_table_columns_to_match_set":
        mismatch = result.get("details", {}).get("mismatched", {})
        parts = [f"{key} columns {sorted(value)}" for key, value in mismatch.items() if value]
        return "; ".join(parts) or f"observed columns {observed}"
    if kind == "expect_table_row_count_to_be_between":
        bounds = f"{kwargs.get('min_value')}..{kwargs.get('max_value')}"
        return f"observed {observed} rows, expected {bounds}"
    if kind == "expect_column_values_to_be_in_type_list" and observed is not None:
        return f"observed {observed!r}, expected one of {kwargs.get('type_list')}"
    if "unexpected_count" in result:
        count = int(result["unexpected_count"])
        share = f"{count} of {result.get('element_count')}"
        examples = result.get("partial_unexpected_list") or []
        if kind == "expect_column_values_to_not_be_null":
            return f"{share} values are null"
        if kind == "expect_column_values_to_be_in_type_list":
            return f"{share} values of other types, e.g. {_examples(examples, with_types=True)}"
        if kind == "expect_column_values_to_be_between":
            bounds = f"{kwargs.get('min_value')}..{kwargs.get('max_value')}"
            return f"{share} values outside {bounds}, e.g. {_examples(examples)}"
        return f"{share} unexpected values, e.g. {_examples(examples)}"
    return f"observed {observed!r}" if observed is not None else "failed"


def _exception_message(info: dict[str, Any]) -> str | None:
    """The first error raised while evaluating; GX nests one entry per metric that raised."""
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return str(entry.get("exception_message") or "unknown error")
    return None


def _examples(values: list[Any], with_types: bool = False) -> str:
    distinct: list[Any] = []
    for value in values:
        if value not in distinct:
            distinct.append(value)
        if len(distinct) == EXAMPLES_SHOWN:
            break
    shown = [f"{v!r} ({type(v).__name__})" if with_types else repr(v) for v in distinct]
    return "[" + ", ".join(shown) + "]"


def quarantine_batch(
    frame: pd.DataFrame, summary: ValidationSummary, folder: Path
) -> ValidationSummary:
    """Keep a failed batch and its summary in `folder`; the returned summary points there."""
    write_parquet_atomic(_parquet_safe(frame), folder / "batch.parquet")
    summary = summary.model_copy(update={"quarantine_uri": str(folder.resolve())})
    (folder / "summary.json").write_text(summary.model_dump_json(indent=2))
    return summary


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: text columns that mix types are stored as text."""
    mixed = [
        column
        for column in frame.columns
        if frame[column].dtype == object and frame[column].dropna().map(type).nunique() > 1
    ]
    if not mixed:
        return frame
    safe = frame.copy()
    for column in mixed:
        safe[column] = frame[column].astype(str).where(frame[column].notna(), None)
    return safe


@task(**IO_RETRIES, **RELEASES_MEMORY)
def validate_snapshot(
    snapshot: Snapshot,
    config: PipelineConfig,
    settings: Settings,
    purpose: Purpose = "training",
) -> ValidationSummary:
    """Validate a snapshot with Great Expectations and publish the outcome as an artifact."""
    frame = read_parquet(snapshot.uri)
    summary = validate_frame(frame, config, settings, purpose, batch_id=snapshot.fingerprint)
    _publish(summary, config, purpose, snapshot)
    return summary


@task
def enforce_data_gate(summary: ValidationSummary, policy: Literal["fail", "warn"]) -> None:
    """The data gate: a failed validation stops the run (policy fail) or is logged (warn)."""
    if summary.success:
        return
    where = [f"Data Docs: {summary.data_docs_url}"] if summary.data_docs_url else []
    where += [f"quarantined batch: {summary.quarantine_uri}"] if summary.quarantine_uri else []
    message = "\n".join(["data validation failed", summary.describe(), *where])
    if policy == "fail":
        raise DataValidationError(message)
    _run_logger().warning("%s\n(policy warn: the run continues)", message)


def _publish(
    summary: ValidationSummary, config: PipelineConfig, purpose: Purpose, snapshot: Snapshot
) -> None:
    """A markdown artifact in the Prefect UI; skipped when not inside a flow or task run."""
    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return
    key = artifact_key("validation", config.name)
    create_markdown_artifact(
        key=key,
        markdown=validation_markdown(summary, purpose, snapshot),
        description=f"Great Expectations {purpose} validation of {config.name}",
    )


def validation_markdown(summary: ValidationSummary, purpose: Purpose, snapshot: Snapshot) -> str:
    """The validation outcome as markdown: verdict, failed expectations, where to look."""
    verdict = "passed" if summary.success else "**failed**"
    lines = [
        f"# Data validation {verdict}",
        "",
        f"Checkpoint `{summary.checkpoint}` ({purpose}) on snapshot `{snapshot.fingerprint}` "
        f"({snapshot.rows} rows): {summary.evaluated - len(summary.failed)} of "
        f"{summary.evaluated} expectations held.",
    ]
    if summary.failed:
        lines += ["", "| Expectation | Column | Observed |", "| --- | --- | --- |"]
        lines += [
            f"| {f.expectation} | {f.column or ''} | {_markdown_cell(f.observed)} |"
            for f in summary.failed
        ]
    lines.append("")
    if summary.data_docs_url:
        lines.append(f"- [Data Docs]({summary.data_docs_url})")
    if summary.quarantine_uri:
        folder = Path(summary.quarantine_uri)
        lines.append(f"- Quarantined batch: [{folder}]({folder.as_uri()})")
    return "\n".join(lines)


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # called outside a run, e.g. `.fn` in a unit test
        return logging.getLogger(__name__)
