"""The documentation site (``make docs``) in a real browser: built strict, served, read in Chromium.

The site is built with ``mkdocs build --strict`` into a temporary directory and served over
loopback by the standard library's static file server (no server code of ours). The hook reference
page is screenshotted (``GPTPROTO_SCREENSHOT_DIR=docs/images`` keeps it as
docs/images/docs-hook-reference.png).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.ui import require_browser

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

require_browser()

from playwright.sync_api import expect  # noqa: E402  (only importable once the check above passed)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]


class _QuietHandler(SimpleHTTPRequestHandler):
    """The standard static file server, minus a stderr line per request."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def docs_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the freshly built site."""
    site = tmp_path_factory.mktemp("docs-site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=True,
        timeout=240,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_hook_reference_page_from_the_home_page(
    docs_site: str, browser_context: BrowserContext, shots: Path
) -> None:
    page = browser_context.new_page()
    page.set_viewport_size({"width": 1400, "height": 900})  # wide enough for Material's side navigation
    try:
        page.goto(docs_site + "/")
        expect(page.get_by_role("heading", name="airflow-provider-gptproto", level=1)).to_be_visible()
        expect(
            page.locator("nav.md-nav--primary").get_by_role("link", name="Hook", exact=True)
        ).to_be_visible()
        page.locator("article").get_by_role("link", name="hook", exact=True).click()
        page.wait_for_url("**/reference/hook/")
        content = page.locator("article")
        hook_class = content.get_by_role("heading", name="GPTProtoHook")
        expect(hook_class).to_be_visible()
        # The reST docstrings rendered as documentation: methods, with their parameter tables.
        for method in ("create_task", "get_task", "wait_for_task", "download_video"):
            expect(content.locator(f"[id$='GPTProtoHook.{method}']").first).to_be_attached()
        expect(content.locator("table").first).to_be_visible()
        hook_class.evaluate("heading => { heading.scrollIntoView(); window.scrollBy(0, -80); }")
        page.screenshot(path=str(shots / "docs-hook-reference.png"), animations="disabled")

        page.goto(docs_site + "/connection/")
        images = page.locator("article img")
        assert images.count() >= 3
        for index in range(images.count()):
            image = images.nth(index)
            image.scroll_into_view_if_needed()
            loaded = image.evaluate("img => img.complete && img.naturalWidth > 0")
            assert loaded, image.get_attribute("src")
    finally:
        page.close()
