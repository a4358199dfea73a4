"""Champion comparison on honest rows: the challenger's holdout rows the champion never trained on.

Every training run records how its holdout was cut (`SplitLineage`, tagged on its MLflow run).
A challenger's holdout row is unseen by the champion when the champion's own record says so:
- it falls in the champion's hash holdout (same row-hash scheme, key columns present), or
- it is later than the champion's training end on the champion's time column.
Either proves the champion never fitted it; the challenger never fitted its own holdout. When
neither applies (a champion from before lineage was recorded, a different hash scheme, no time
column) or too few rows remain, there is no honest comparison and a person decides.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import ValidationError
from sklearn.pipeline import Pipeline

from prefect_mlops.evaluation import holdout_metrics
from prefect_mlops.metrics import Label
from prefect_mlops.results import ChampionScore, ComparedRows, FeatureSchema, SplitLineage
from prefect_mlops.split import ROW_HASH, clock, holdout_buckets, row_buckets

# Tags on the training run (and so reachable from every version it registered).
TAG_PREFIX = "split_"
# MLflow caps a tag value at 5000 characters; a wider key is kept by its digest only.
MAX_KEY_TAG = 4000


def split_tags(lineage: SplitLineage) -> dict[str, str]:
    """The lineage as string tags (`split_*`); the row key as JSON and as a digest."""
    key = json.dumps(lineage.row_key)
    tags = {
        "strategy": lineage.strategy,
        "test_size": repr(lineage.test_size),
        "assignment": lineage.assignment,
        "row_key": key if len(key) <= MAX_KEY_TAG else "",
        "row_key_digest": hashlib.sha256(key.encode()).hexdigest()[:16],
        "hash_scheme": lineage.hash_scheme or "",
        "time_column": lineage.time_column or "",
        "train_end": lineage.train_end or "",
    }
    return {f"{TAG_PREFIX}{name}": value for name, value in tags.items()}


def lineage_from_tags(tags: Mapping[str, str]) -> SplitLineage | None:
    """The lineage recorded in `split_*` tags, or None when it is absent or unreadable."""
    found = {k.removeprefix(TAG_PREFIX): v for k, v in tags.items() if k.startswith(TAG_PREFIX)}
    if "assignment" not in found:
        return None
    try:
        key = json.loads(found.get("row_key") or "[]")
        return SplitLineage(
            strategy=found.get("strategy", ""),
            test_size=float(found.get("test_size", "nan")),
            assignment=found["assignment"],
            row_key=key,
            hash_scheme=found.get("hash_scheme") or None,
            time_column=found.get("time_column") or None,
            train_end=found.get("train_end") or None,
        )
    except (ValueError, ValidationError):
        return None


def describe_split(lineage: SplitLineage) -> str:
    """A split in words: '20% time split on timestamp, trained up to ...' or a hash split."""
    how = (
        f"{lineage.test_size:.0%} {lineage.strategy} split on {lineage.time_column}"
        if lineage.assignment == "time"
        else f"{lineage.test_size:.0%} {lineage.strategy} split by a hash of "
        f"{len(lineage.row_key)} key column(s) ({lineage.hash_scheme})"
    )
    if lineage.train_end:
        how += f", trained up to {lineage.time_column} {lineage.train_end}"
    return how


def lineage_columns(champion: SplitLineage | None, challenger: SplitLineage) -> list[str]:
    """The columns beyond the features the comparison reads from the holdout."""
    wanted = [challenger.time_column]
    if champion is not None:
        wanted += [champion.time_column, *champion.row_key]
    return list(dict.fromkeys(c for c in wanted if c))


@dataclass(frozen=True)
class UnseenRows:
    """Which holdout rows the champion never trained on, why, or why none can be trusted."""

    mask: np.ndarray | None
    basis: str
    reason: str | None = None


def unseen_rows(
    holdout: pd.DataFrame, champion: SplitLineage | None, version: str, min_rows: int
) -> UnseenRows:
    """The challenger's holdout rows champion `version` never trained on (see module doc)."""
    if champion is None:
        return UnseenRows(
            None,
            "",
            f"champion v{version} has no split lineage (registered before it was recorded), "
            "so the rows it trained on are unknown",
        )
    unseen = np.zeros(len(holdout), dtype=bool)
    bases = []
    key = champion.row_key
    if (
        champion.assignment == "hash"
        and champion.hash_scheme == ROW_HASH
        and key
        and all(c in holdout.columns for c in key)
    ):
        unseen |= row_buckets(holdout[key]) < holdout_buckets(champion.test_size)
        bases.append(f"in champion v{version}'s own hash holdout")
    column, end = champion.time_column, champion.train_end
    if column and end and column in holdout.columns:
        unseen |= (clock(holdout[column], column, strict=False) > pd.Timestamp(end)).to_numpy()
        bases.append(f"later than champion v{version}'s training end ({column} {end})")
    if not bases:
        return UnseenRows(
            None,
            "",
            f"champion v{version}'s {describe_split(champion)} cannot be matched to the "
            "challenger's holdout rows, so the rows it trained on are unknown",
        )
    basis = " or ".join(bases)
    if int(unseen.sum()) < min_rows:
        return UnseenRows(
            None,
            basis,
            f"only {int(unseen.sum())} of the challenger's {len(holdout)} holdout rows are {basis} "
            f"(gate.min_comparison_rows is {min_rows}): no rows neither model trained on",
        )
    return UnseenRows(unseen, basis)


def compared_rows(
    holdout: pd.DataFrame, unseen: UnseenRows, time_column: str | None
) -> ComparedRows:
    """What the comparison used: how many rows, why, and their time range when one is known."""
    mask = unseen.mask if unseen.mask is not None else np.zeros(len(holdout), dtype=bool)
    first = last = None
    if time_column and time_column in holdout.columns and mask.any():
        times = clock(holdout.loc[mask, time_column], time_column, strict=False)
        first, last = times.min().isoformat(), times.max().isoformat()
    return ComparedRows(
        rows=int(mask.sum()),
        of_holdout=len(holdout),
        basis=unseen.basis,
        time_column=time_column,
        first=first,
        last=last,
    )


def recorded_lineage(client: MlflowClient, name: str, version: str) -> SplitLineage | None:
    """The split lineage of a registered version: its own tags, else its training run's."""
    found = client.get_model_version(name, version)
    tags = dict(found.tags)
    run_id = found.run_id or tags.get("mlflow_run_id")
    if run_id:
        try:
            tags = {**client.get_run(run_id).data.tags, **tags}
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise  # a deleted run only means the lineage is unknown
    return lineage_from_tags(tags)


def compare_models(
    challenger: Pipeline,
    champion: Pipeline,
    holdout: pd.DataFrame,
    schema: FeatureSchema,
    version: str,
    unseen: UnseenRows,
    time_column: str | None = None,
    positive_label: Label | None = None,
) -> ChampionScore:
    """Both models' metrics on the unseen rows only, and what those rows were."""
    if unseen.mask is None:
        raise ValueError("compare_models needs rows: check unseen.reason first")
    rows = holdout[unseen.mask].reset_index(drop=True)
    return ChampionScore(
        version=version,
        metrics=holdout_metrics(champion, rows, schema, positive_label),
        challenger_metrics=holdout_metrics(challenger, rows, schema, positive_label),
        compared_on=compared_rows(holdout, unseen, time_column),
    )
