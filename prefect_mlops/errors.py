"""The project's exceptions: each names what is wrong so a person can fix it."""


class MlopsError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(MlopsError):
    """The pipeline configuration is invalid."""


class UnsafeNameError(ConfigError):
    """A name breaks the naming rule, or a path built from it leaves its root."""


class IngestError(MlopsError):
    """A data source is missing, unreadable, empty or malformed."""


class DataQualityError(MlopsError):
    """The data breaks a rule training cannot proceed without (target absent, one class, ...)."""


class DataValidationError(MlopsError):
    """A Great Expectations checkpoint failed under the `fail` policy."""


class ModelGateError(MlopsError):
    """The candidate model was not blessed: one or more gate rules were violated."""


class RegistryError(MlopsError):
    """A registry operation could not be completed; nothing was left half-done."""


class ScoringError(IngestError):
    """Rows cannot be scored by a model version: names the file or table, column and version."""


class ServerUnavailableError(MlopsError):
    """A tracking or orchestration server does not answer (named in the message)."""


class MonitoringError(MlopsError):
    """A monitoring step failed on a model version's data: names the model, version and columns."""


class ArtifactStoreError(MlopsError):
    """The artifact store cannot be reached, read or written: names the URI."""


class ArtifactNotFoundError(ArtifactStoreError, FileNotFoundError):
    """An artifact a run refers to (a snapshot, a split) is not in its store: names the URI."""
