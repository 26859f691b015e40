"""The morning report in a real headless browser: Debian's chromium (tests/browser.py, driven by
playwright with executable_path), on the marts the session pipeline published. The page loads with no
console errors, no uncaught exceptions and no network request at all; every plotly chart draws; nothing
is wider than a 1366 px laptop screen; it prints to a PDF. The full-page screenshot and the PDF are
kept as test artefacts in test-artifacts/ (NPS_TEST_ARTIFACTS overrides).

Without chromium the test skips, loudly, unless NPS_BROWSER_REQUIRED=1 (`make test` sets it once
deploy/ensure-chromium.sh has installed chromium): then it fails."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from nps.cli import main as cli_main
from tests import browser

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent


def artefacts_dir() -> Path:
    folder = Path(os.environ.get("NPS_TEST_ARTIFACTS") or REPO / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# session-scoped and first in the test's arguments: a missing browser skips (or fails) before the
# session pipeline is built
@pytest.fixture(scope="session")
def chromium() -> str:
    found = browser.find_chromium()
    if found:
        return found
    if os.environ.get("NPS_BROWSER_REQUIRED") == "1":
        pytest.fail("NPS_BROWSER_REQUIRED=1 but Debian's chromium is not installed (no `chromium` on PATH, no "
                    "/usr/bin/chromium): install it with `apt-get install chromium` (deploy/ensure-chromium.sh)",
                    pytrace=False)
    message = ("THE REPORT'S BROWSER TEST DID NOT RUN: Debian's chromium is not installed, so the HTML report was "
               "not checked in a real browser (console errors, network requests, charts, layout, printing). "
               "Install it with `apt-get install chromium` (or run deploy/ensure-chromium.sh as root).")
    warnings.warn(message, stacklevel=1)
    pytest.skip(message)


def test_the_report_loads_cleanly_in_headless_chromium(chromium, pipeline, tmp_path):
    html = tmp_path / "report.html"
    assert cli_main(["report", "--out", str(html)]) == 0
    out = artefacts_dir()
    shot, pdf = out / "report-1366.png", out / "report.pdf"
    for stale in (shot, pdf):
        stale.unlink(missing_ok=True)

    r = browser.check_page(html, screenshot=shot, pdf=pdf, executable=chromium)
    print(f"\nbrowser test artefacts: screenshot {shot}, PDF {pdf}")

    assert r.console_errors == [], f"console errors: {r.console_errors}"
    assert r.page_errors == [], f"uncaught exceptions: {r.page_errors}"
    assert r.requests == [], f"the page made network requests: {r.requests}"
    assert r.charts > 0, "no plotly chart on the page"
    assert r.charts_rendered == r.charts, f"only {r.charts_rendered} of {r.charts} charts drew"
    assert not r.overflows, f"the page is {r.scroll_width}px wide at a {r.viewport_width}px viewport"

    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is a PNG"
    data = pdf.read_bytes()
    assert len(data) > 1000 and data.startswith(b"%PDF"), "the page prints to a PDF"
