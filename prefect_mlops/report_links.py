"""Links to HTML reports: a report file's path turned into its URL on the stack's report server.

Browsers refuse `file://` links from a web page (the Prefect UI), and MLflow's server sends every
artifact as a download (`Content-Disposition: attachment`, against XSS), so an HTML report is
linked by its URL on the report server (`prefect_mlops.report_server`, started by `mlops up`),
which serves these folders read-only under one prefix each.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from prefect_mlops.settings import Settings

# The Data Docs site of great_expectations.yml (`data_docs_sites.local_site`), under gx_root.
DATA_DOCS_SITE_DIR = Path("uncommitted") / "data_docs" / "local_site"


def report_roots(settings: Settings) -> dict[str, Path]:
    """URL prefix -> folder, for every folder of HTML reports the report server publishes."""
    return {
        "data-docs": Path(os.path.normpath((settings.gx_root / DATA_DOCS_SITE_DIR).absolute())),
        "monitoring": Path(os.path.normpath(settings.monitoring_dir.absolute())),
    }


def report_url(path: str | Path, settings: Settings) -> str | None:
    """The report server's URL of `path` (a file path or `file://` URL), or None when no report
    server is configured (`MLOPS_REPORTS_URL`) or the file is not under one of its folders."""
    if not settings.reports_url:
        return None
    text = str(path)
    local = Path(unquote(urlparse(text).path)) if text.startswith("file://") else Path(text)
    local = Path(os.path.normpath(local.absolute()))
    for prefix, root in report_roots(settings).items():
        if local.is_relative_to(root):
            relative = local.relative_to(root).as_posix()
            return f"{settings.reports_url.rstrip('/')}/{prefix}/{quote(relative)}"
    return None


def report_link(path: str | Path, settings: Settings, label: str) -> str:
    """A Markdown link to a report: its server URL, else its path as plain text."""
    url = report_url(path, settings)
    return f"[{label}]({url})" if url else f"{label}: `{path}`"
