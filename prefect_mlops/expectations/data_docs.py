"""Data Docs that render with no network: CDN assets swapped for vendored copies.

GX 1.24's page templates load Bootstrap, jQuery, Vega, Font Awesome and the navbar logo from
CDNs, so a site opened offline (or from a machine without internet, as here) is an unstyled
page. GX's custom views cannot replace those templates (its template loader looks at its own
package first), so after each build the pages written by that build are rewritten to load the
files of `data_docs_static/` (see its README: versions and licenses), copied into the site's
`static/vendor/`.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

VENDOR_SOURCE = Path(__file__).parent / "data_docs_static"
VENDOR_DIR = "static/vendor"
# Every asset URL of GX 1.24's templates -> the vendored file under static/vendor/.
CDN_FILES = {
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js": (
        "bootstrap-table/bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css": "bootstrap-table/bootstrap-table-filter-control.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css": (
        "bootstrap-table/bootstrap-table-filter-control.min.css"
    ),
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap/bootstrap.min.css"
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap/bootstrap.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": "bootstrap-datepicker/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": "bootstrap-datepicker/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css": "bootstrap-dark/bootstrap-prefers-dark.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega/vega-embed.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "fontawesome/css/all.min.css"
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper/popper.min.js"
    ),
}
# The navbar logo; GX copies the same images into every site's static/images/.
GX_IMAGES = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
_ASSET = re.compile(r'(?P<attr>src|href)="(?P<url>https://[^"]+)"')
# Subresource-integrity pins of the CDN copies; the vendored files are trusted as shipped.
_SRI = re.compile(r'\s+integrity="[^"]*"|\s+crossorigin="anonymous"')


def site_dir_of(site_url: str) -> Path | None:
    """The local folder of a Data Docs site from its `file://.../index.html` URL (None else)."""
    parsed = urlparse(site_url)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path)).parent


def make_site_offline(site_dir: Path, since: float | None = None) -> list[Path]:
    """Copy the vendored assets into `site_dir` and rewrite its pages (those modified at or
    after `since`, else all) to use them; the pages rewritten."""
    shutil.copytree(
        VENDOR_SOURCE,
        site_dir / VENDOR_DIR,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("README.md"),
    )
    rewritten = []
    for page in site_dir.rglob("*.html"):
        if since is not None and page.stat().st_mtime < since:
            continue
        text = page.read_text(encoding="utf-8")
        offline = offline_html(text, os.path.relpath(site_dir, page.parent))
        if offline != text:
            page.write_text(offline, encoding="utf-8")
            rewritten.append(page)
    return rewritten


def offline_html(html: str, to_root: str) -> str:
    """`html` with every known CDN asset pointed at the vendored copy (`to_root`: the relative
    path from the page's folder to the site's root folder)."""
    root = Path(to_root).as_posix()

    def local(match: re.Match[str]) -> str:
        url = match["url"].replace("&amp;", "&")
        if url in CDN_FILES:
            return f'{match["attr"]}="{root}/{VENDOR_DIR}/{CDN_FILES[url]}"'
        if url.startswith(GX_IMAGES):
            image = url[len(GX_IMAGES) :].split("?", 1)[0]
            return f'{match["attr"]}="{root}/static/images/{image}"'
        return match[0]

    html = _ASSET.sub(local, html)
    return _SRI.sub("", html) if "integrity=" in html else html
