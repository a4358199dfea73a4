"""Names the package derives from user input: artifact keys and other slugs."""

from __future__ import annotations


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key: lowercase letters, digits and dashes only."""
    raw = "-".join(parts).lower()
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in raw).strip("-")
