"""Data Docs pages load only vendored assets (no CDN) and show a passing batch's observed values."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest

from prefect_mlops.config import PipelineConfig
from prefect_mlops.expectations.data_docs import CDN_FILES, VENDOR_SOURCE, offline_html
from prefect_mlops.expectations.run import validate_frame
from prefect_mlops.settings import Settings

ASSET = re.compile(r"""<(?:script|link|img)\b[^>]*?(?:src|href)="([^"]+)\"""")


@pytest.fixture(scope="module")
def site(
    bikeshare: pd.DataFrame, config: PipelineConfig, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    from tests.prefect_mlops.expectations.helpers import copy_gx

    settings: Settings = copy_gx(tmp_path_factory.mktemp("docs"))
    always = config.model_copy(
        update={"validation": config.validation.model_copy(update={"data_docs": "always"})}
    )
    summary = validate_frame(bikeshare, always, settings, "training", batch_id="offline")
    assert summary.success and summary.data_docs_url
    return Path(urlparse(summary.data_docs_url).path).parent


def test_every_vendored_file_exists() -> None:
    missing = [f for f in CDN_FILES.values() if not (VENDOR_SOURCE / f).is_file()]
    assert not missing


def test_pages_load_only_files_of_the_site(site: Path) -> None:
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 3  # the index, a suite, a validation result
    for page in pages:
        assets = [a for a in ASSET.findall(page.read_text()) if not a.endswith("favicon.ico")]
        remote = [a for a in assets if "//" in a]
        assert not remote, (page, remote)
        missing = [a for a in assets if not (page.parent / a).resolve().is_file()]
        assert not missing, (page, missing)
        assert "integrity=" not in page.read_text()


def test_a_passing_batch_shows_its_observed_values(site: Path) -> None:
    page = next((site / "validations" / "bikeshare" / "training").rglob("*.html"))
    text = re.sub(r"<(script|style)\b.*?</\1>", "", page.read_text(), flags=re.S)
    cells = [re.sub(r"<[^>]+>|\s+", " ", c).strip() for c in re.findall(r"<td.*?</td>", text, re.S)]
    assert "8645" in " ".join(cells)  # the row count of the batch
    assert any("% not null" in c for c in cells)
    dashes = sum(c == "--" for c in cells)
    assert dashes <= 2, dashes  # was one per expectation with a BOOLEAN_ONLY result


def test_offline_html_rewrites_known_cdn_assets_relative_to_the_page() -> None:
    html = (
        '<script src="https://code.jquery.com/jquery-3.7.1.min.js" integrity="sha384-x"'
        ' crossorigin="anonymous"></script>'
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/'
        'logo-long.png?d=1">'
        '<a href="https://greatexpectations.io">GX</a>'
    )
    out = offline_html(html, "../..")
    assert '<script src="../../static/vendor/jquery/jquery.min.js"></script>' in out
    assert '<img src="../../static/images/logo-long.png">' in out
    assert 'href="https://greatexpectations.io"' in out  # a link, not an asset: kept
