"""Compatibility names for models logged by 0.1.0; no code of the package uses this module.

Pipelines logged by 0.1.0 hold `FunctionTransformer(tasks.features._as_text)` and
`FunctionTransformer(tasks.features.datetime_parts)`, and skops resolves those qualified names
when a registered version is loaded. They point at the legacy functions of the core
(`prefect_mlops.transformers`), so loading such a model imports neither Prefect nor any task.
Do not remove or rename anything here without a migration of the versions in every registry
(and keep `tests/model/` green). Keep this module free of other imports: loading a model runs it.
"""

from prefect_mlops.transformers import DATETIME_PARTS
from prefect_mlops.transformers import legacy_as_text as _as_text
from prefect_mlops.transformers import legacy_datetime_parts as datetime_parts

__all__ = ["DATETIME_PARTS", "_as_text", "datetime_parts"]
