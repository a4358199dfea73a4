"""Names the package takes from users or derives from them, and the paths built from names.

One rule for every name that can end up in a path or a registry key (the pipeline's `name`,
`registered_model_name`, `experiment_name`, `validation.suite`, a CLI's `--model`): MLflow's
registered-model rules (not empty, no `/` or `:`) tightened so a name is always one safe path
component. `NAME_RULE` says it in words; `check_name` applies it; `confined` is the only way a
path is built from a name, and refuses one that resolves outside its root.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from prefect_mlops.errors import UnsafeNameError

MAX_NAME_LENGTH = 128
# Letters, digits, `_`, `.` and `-`, starting with a letter or digit: no path separator, no
# drive or URI colon, no whitespace or control character, no leading dot (hidden files, `..`).
NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH - 1}}}")
NAME_RULE = (
    f"1-{MAX_NAME_LENGTH} letters, digits, '_', '.' or '-', starting with a letter or digit, "
    "without '..'"
)
# MLflow's own rule for aliases (word characters and dashes); 'latest' and 'vN' are reserved.
ALIAS_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,255}")
RESERVED_ALIAS = re.compile(r"(?i)latest|v\d+")


def name_problem(value: str) -> str | None:
    """Why `value` is not a valid name, or None when it is."""
    if not value:
        return "is empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"is {len(value)} characters long (at most {MAX_NAME_LENGTH})"
    if "/" in value or "\\" in value:
        return "contains a path separator"
    if ".." in value:
        return "contains '..'"
    if value.startswith("."):
        return "starts with a dot"
    if not value.isprintable():
        return "contains a non-printable character"
    if not NAME_PATTERN.fullmatch(value):
        return f"breaks the naming rule ({NAME_RULE})"
    return None


def check_name(value: str, field: str) -> str:
    """`value` itself, or UnsafeNameError naming `field` and the rule it breaks."""
    problem = name_problem(value)
    if problem is not None:
        raise UnsafeNameError(f"{field} {value!r} {problem}")
    return value


def _valid_name(value: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(f"{value!r} {problem}")
    return value


def _valid_alias(value: str) -> str:
    if not ALIAS_PATTERN.fullmatch(value):
        raise ValueError(f"alias {value!r} must be 1-255 letters, digits, '_' or '-'")
    if RESERVED_ALIAS.fullmatch(value):
        raise ValueError(f"alias {value!r} is reserved by MLflow")
    return value


# Pydantic field types: the error pydantic reports carries the field's location.
SafeName = Annotated[str, AfterValidator(_valid_name)]
AliasName = Annotated[str, AfterValidator(_valid_alias)]


def confined(root: Path, *parts: str, field: str) -> Path:
    """`root / parts` resolved, refused (UnsafeNameError naming `field`) outside `root`.

    Resolving follows symbolic links, so a link inside the root pointing elsewhere is refused too.
    """
    base = root.resolve()
    path = base.joinpath(*parts).resolve()
    if path != base and not path.is_relative_to(base):
        raise UnsafeNameError(f"{field} {'/'.join(parts)!r} leads outside {base}")
    return path


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key: lowercase letters, digits and dashes only."""
    raw = "-".join(parts).lower()
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in raw).strip("-")
