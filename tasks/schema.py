"""Schema task: infer the feature schema of a snapshot and check it can be trained on."""

from __future__ import annotations

import pyarrow.parquet as pq
from prefect import task

from prefect_mlops.artifact_store import local_file
from prefect_mlops.config import PipelineConfig
from prefect_mlops.errors import DataQualityError
from prefect_mlops.features import check_training_frame, infer_schema
from prefect_mlops.io import read_parquet
from prefect_mlops.results import FeatureSchema, Snapshot
from tasks.policies import RELEASES_MEMORY


@task(**RELEASES_MEMORY, task_run_name="schema of {config.name}")
def derive_schema(snapshot: Snapshot, config: PipelineConfig) -> FeatureSchema:
    """Infer the feature schema of a snapshot and refuse data that cannot be trained on."""
    # Types come from the Parquet schema; only the model's columns are read to check them.
    local = local_file(snapshot.uri)  # a remote snapshot is read through the cache
    layout = pq.read_schema(local).empty_table().to_pandas()
    if config.target not in layout.columns:
        raise DataQualityError(
            f"target column {config.target!r} is absent; columns are {list(layout.columns)}"
        )
    schema = infer_schema(layout, config)
    check_training_frame(read_parquet(local, columns=schema.columns()), schema)
    return schema
