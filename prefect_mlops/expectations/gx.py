"""The one adapter over Great Expectations internals, with the workarounds that keep it fast.

Every call below that reaches past GX's documented surface, or sets it up unusually, says which
GX 1.24 behaviour it works around and what that buys (figures at 1M rows, from the commits that
introduced them and the README's benchmark section). The rest of the package talks to GX through
these functions only, apart from building expectations and reading results.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from great_expectations.checkpoint import Checkpoint
from great_expectations.checkpoint.checkpoint import CheckpointResult
from great_expectations.compatibility.pydantic import ValidationError as GXModelError
from great_expectations.core import ExpectationSuite
from great_expectations.core.batch_definition import BatchDefinition
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
from great_expectations.execution_engine import PandasExecutionEngine, pandas_execution_engine
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.metrics.map_metric_provider import column_condition_partial
from great_expectations.expectations.registry import _registered_metrics

from prefect_mlops.expectations.data_docs import make_site_offline, site_dir_of
from prefect_mlops.settings import Settings

DATASOURCE_NAME = "pandas"
BATCH_DEFINITION_NAME = "whole-dataframe"
DATA_DOCS_SITE = "local_site"
IN_TYPE_LIST_CONDITION = "column_values.in_type_list.condition"
# pandas options and GX's metric registry are process-wide: checkpoint runs take turns so each
# restores what it found.
_FAST_PATHS_LOCK = threading.Lock()


def project_exists(settings: Settings) -> bool:
    """Whether `settings.gx_root` holds a GX project.

    `get_context(mode="file")` scaffolds a new, empty project where none exists, so a validation
    run checks first instead of silently validating against nothing.
    """
    return (settings.gx_root / "great_expectations.yml").is_file()


def open_context(settings: Settings) -> FileDataContext:
    """The file Data Context under `settings.gx_root`, fingerprinting and progress bars off."""
    # GX hashes every in-memory pandas batch smaller than HASH_THRESHOLD (1 GB) for a batch
    # marker, once per suite: 0.4 s each at 1M rows (validation 2.0 -> 1.2 s without it). Every
    # batch validated here is already named by its content fingerprint (the snapshot's, in the
    # run name), so GX's second one is skipped.
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = get_context(mode="file", context_root_dir=str(settings.gx_root))
    # Validators read this flag when they are built; without it tqdm writes to stderr per run.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def init_context(settings: Settings) -> FileDataContext:
    """A new or existing project whose settings (progress bars off) are saved for every reader."""
    context = open_context(settings)
    context.variables.save()
    return context


def save_suite(
    context: FileDataContext, name: str, expectations: list[Expectation]
) -> ExpectationSuite:
    """Create or update a suite, keeping the ids of unchanged expectations.

    `suites.add_or_update` means to keep them, but in GX 1.24 it compares expectations including
    their ids, so a freshly built expectation (id None) never matches and every id changes: a
    re-run of `mlops suite init` on the same data would rewrite every committed file.
    """
    suite = ExpectationSuite(name=name, expectations=expectations)
    try:
        stored = context.suites.get(name).expectations
    except DataContextError:
        stored = []
    ids = {_expectation_key(e): e.id for e in stored}
    for expectation in suite.expectations:
        expectation.id = ids.get(_expectation_key(expectation))
    return context.suites.add_or_update(suite)


def _expectation_key(expectation: Expectation) -> str:
    configuration = expectation.configuration.to_json_dict()
    configuration.pop("id", None)
    configuration["meta"] = configuration.get("meta") or None
    return json.dumps(configuration, sort_keys=True, default=str)


def save_validation_definition(
    context: FileDataContext, suite: ExpectationSuite
) -> ValidationDefinition:
    """A validation definition of `suite` on a whole in-memory DataFrame, named like the suite."""
    data = _whole_dataframe(_pandas_datasource(context), suite.name)
    definition = ValidationDefinition(name=suite.name, data=data, suite=suite)
    return context.validation_definitions.add_or_update(definition)


def save_checkpoint(
    context: FileDataContext, name: str, definitions: list[ValidationDefinition]
) -> Checkpoint:
    """Create or update a checkpoint that stores summaries and leaves Data Docs to the caller."""
    checkpoint = Checkpoint(
        name=name,
        validation_definitions=definitions,
        actions=[],  # Data Docs are built by validate_frame, per `validation.data_docs`
        # COMPLETE would list every unexpected value in the stored result: 8.5 MB for a 1M-row
        # batch with a fifth of a column bad, 47 KB with SUMMARY (counts and 20 examples per
        # failed expectation), same messages; the quarantined batch keeps every row.
        result_format={"result_format": "SUMMARY"},
    )
    return context.checkpoints.add_or_update(checkpoint)


def load_checkpoint(context: FileDataContext, name: str) -> Checkpoint:
    """The stored checkpoint `name`; `LookupError` (with GX's reason) when it cannot be loaded."""
    try:
        return context.checkpoints.get(name)
    except (DataContextError, GXModelError) as exc:  # GXModelError: one of its suites is gone
        raise LookupError(" ".join(str(exc).split())) from exc


def run_checkpoint(
    context: FileDataContext,
    checkpoint: Checkpoint,
    frame: pd.DataFrame,
    run_name: str,
    report: bool = False,
) -> CheckpointResult:
    """Run a checkpoint on a frame: pass or fail first, the detailed report only on failure
    or when `report` asks for it (Data Docs of a passing batch show observed values then)."""
    run_id = RunIdentifier(run_name=run_name)
    try:
        # Pass or fail alone is cheap: validation 3.3 -> 2.0 s at 1M rows. Only a failing batch
        # (or one whose Data Docs are wanted) pays for the checkpoint's detailed run, whose
        # stored result replaces the quick one: a BOOLEAN_ONLY result has no observed values,
        # so its Data Docs page would show "--" in every row.
        with _fast_paths():
            result = None if report else _quick_pass(checkpoint, frame, run_id)
            if result is None or not result.success:
                result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
    finally:
        _forget_batches(context)
    return result


@contextmanager
def _fast_paths() -> Iterator[None]:
    """GX's pandas engine with the two workarounds below, for one checkpoint run at a time."""
    with _FAST_PATHS_LOCK, _copy_on_write(), _vectorised_text_type_check():
        yield


@contextmanager
def _copy_on_write() -> Iterator[None]:
    """pandas' copy-on-write mode (pandas 3's only mode) while GX computes its metrics.

    Every column map metric of GX 1.24's pandas engine drops the column's nulls first with
    `df[df[column].notnull()]`, which without copy-on-write deep-copies the whole frame even when
    no value is null: 14 copies of every column per batch of the example's suites (1.1 s of 3.7 s
    validating 1M rows). With it the all-true selection is a lazy copy; values and results are
    the same (GX supports pandas 3, where this is the only mode).
    """
    with pd.option_context("mode.copy_on_write", True):
        yield


@contextmanager
def _vectorised_text_type_check() -> Iterator[None]:
    """`expect_column_values_to_be_in_type_list` on a text column without a Python call per value.

    On an object column GX 1.24 maps `isinstance(value, types)` over every value: 0.2 s per text
    column of 1M rows, per checkpoint run (mnth and weathersit of the example). The condition
    metric's pandas provider is swapped, for the run, for `text_values_in_type_list`, which gives
    the same boolean series: validating 1M rows of the example in-process 1.67 -> 1.15 s.
    """
    providers = _registered_metrics[IN_TYPE_LIST_CONDITION]["providers"]
    engine = PandasExecutionEngine.__name__
    found = providers[engine]
    metric_class, provider = found
    providers[engine] = (metric_class, _vectorised_provider(inspect.unwrap(provider)))
    try:
        yield
    finally:
        providers[engine] = found


def _vectorised_provider(plain: Callable[..., pd.Series]) -> Callable[..., Any]:
    """GX's condition provider around `text_values_in_type_list` (nulls dropped first, as GX's)."""

    def in_type_list(cls: type, column: pd.Series, type_list: list[str], **kw: Any) -> pd.Series:
        return text_values_in_type_list(column, lambda c: plain(cls, c, type_list, **kw))

    return column_condition_partial(engine=PandasExecutionEngine)(in_type_list)


def text_values_in_type_list(
    column: pd.Series, plain: Callable[[pd.Series], pd.Series]
) -> pd.Series:
    """GX's per-value type check `plain(column)`, answered at once for a column of text only.

    When every value is a `str` (pandas' C-level `infer_dtype`, about 5 ms per 1M values) and a
    plain `str` passes the check, every value passes: a type that admits `str` admits every
    subclass of it. Anything else (a mixed column, a null, a type list that refuses `str`) is
    checked by `plain` itself, value by value.
    """
    if (
        column.dtype == object
        and len(column) > 0
        and pd.api.types.infer_dtype(column, skipna=False) == "string"
        and bool(plain(pd.Series([""], dtype=object)).iloc[0])
    ):
        return pd.Series(True, index=column.index, name=column.name)
    return plain(column)


def _quick_pass(
    checkpoint: Checkpoint, frame: pd.DataFrame, run_id: RunIdentifier
) -> CheckpointResult:
    """The checkpoint's validation definitions with pass or fail per expectation only.

    `Checkpoint.run` takes no result format per call (it always uses the checkpoint's SUMMARY),
    so each definition runs with BOOLEAN_ONLY and their results are assembled into the
    `CheckpointResult` the checkpoint would have returned.
    """
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


def _forget_batches(context: FileDataContext) -> None:
    """Drop the validated frame from GX's batch cache.

    The context is process-wide (GX's project manager keeps it), and its pandas execution engine
    caches every batch it loaded: without this the last validated frame (about 400 MiB at 1M
    rows) stays alive for the rest of the run.
    """
    manager = _pandas_datasource(context).get_execution_engine().batch_manager
    manager.reset_batch_cache()
    manager.batch_data_cache.clear()


def build_data_docs(context: FileDataContext, result: CheckpointResult | None = None) -> str | None:
    """Render the Data Docs site (only this result's pages and the index, when given); its URL."""
    identifiers: list[Any] | None = None
    if result is not None:
        # Without identifiers GX re-renders a page for every stored result, a cost that grows
        # with every run; the given result's pages and its suites' pages are all that changed.
        identifiers = list(result.run_results)
        identifiers += [
            ExpectationSuiteIdentifier(name=r.suite_name) for r in result.run_results.values()
        ]
    started = time.time() - 1  # file times can be a second coarse
    context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=identifiers)
    sites = context.get_docs_sites_urls(site_name=DATA_DOCS_SITE)
    url = sites[0]["site_url"] if sites else None
    site_dir = site_dir_of(url) if url else None
    if site_dir is not None:  # a local site: its pages load vendored assets, not CDNs
        make_site_offline(site_dir, since=started)
    return url


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
