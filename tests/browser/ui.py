"""Driving Airflow's React UI with Playwright and Debian's Chromium, for the browser tests.

Playwright's own browser download is not available here, so Chromium is Debian's package
(``/usr/bin/chromium``), launched headless with everything that would reach the network switched
off, in a fresh profile. Nothing in this module imports Playwright at import time: the test module
decides whether to skip (Chromium or Playwright missing) before anything needs it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Route

CHROMIUM = Path(os.environ.get("GPTPROTO_CHROMIUM", "/usr/bin/chromium"))
# Headless, no sandbox (root in a container), and no background traffic: the machine has no
# network beyond loopback, and without these Chromium keeps retrying update/sync/metrics hosts.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1200, "height": 720}
# Set by `make test-browser` and CI: a missing browser is then an error, not a skip.
REQUIRE_ENV = "GPTPROTO_BROWSER_TESTS"
# Where screenshots go (default: the test's temporary directory). `docs/images` refreshes the docs' pictures.
SCREENSHOT_ENV = "GPTPROTO_SCREENSHOT_DIR"

UI_TIMEOUT_MS = 60_000  # one UI step (page load, toast, dialog) on a busy 2-core machine
PORTLESS_TEST_BUG = "The host or port to test differs from the stored connection"


def missing_browser_requirements() -> list[str]:
    """What keeps the browser tests from running here (empty when they can run)."""
    missing = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright Python package (pip install -e '.[test]')")
    return missing


def browser_tests_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "required", "yes")


def require_browser() -> None:
    """Call at the top of a browser test module: skip it when Chromium or Playwright is missing.

    With ``GPTPROTO_BROWSER_TESTS=required`` (``make test-browser``, CI) that is an error instead.
    """
    import pytest

    missing = missing_browser_requirements()
    if missing:
        reason = "browser tests need " + " and ".join(missing)
        if browser_tests_required():
            pytest.fail(f"{reason} ({REQUIRE_ENV}=required)", pytrace=False)
        pytest.skip(reason, allow_module_level=True)


def screenshot_dir(default: Path) -> Path:
    """``$GPTPROTO_SCREENSHOT_DIR`` (relative to the repo root) or ``default``; created."""
    configured = os.environ.get(SCREENSHOT_ENV, "").strip()
    repo_root = Path(__file__).resolve().parents[2]
    path = (repo_root / configured) if configured else default
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------------------------------ pages
def login(page: Page, base_url: str, username: str, password: str) -> None:
    """Sign in through SimpleAuthManager's real login page, as a person would."""
    from playwright.sync_api import expect

    page.goto(base_url + "/")
    page.wait_for_url("**/auth/login**", timeout=UI_TIMEOUT_MS)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=UI_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Admin")).to_be_visible(timeout=UI_TIMEOUT_MS)


def open_home(page: Page, base_url: str) -> None:
    """Load Airflow's start page afresh (whatever an earlier step left open is gone)."""
    from playwright.sync_api import expect

    page.goto(base_url + "/")
    expect(page.get_by_role("button", name="Admin")).to_be_visible(timeout=UI_TIMEOUT_MS)


def open_connections(page: Page, base_url: str) -> None:
    """From the start page: Admin -> Connections in the navigation bar."""
    from playwright.sync_api import expect

    open_home(page, base_url)
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    page.wait_for_url("**/connections", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Add Connection")).to_be_visible(timeout=UI_TIMEOUT_MS)


def open_add_connection(page: Page, conn_id: str, type_name: str) -> Locator:
    """Open the "Add Connection" dialog, fill the id and pick the type by its hook name."""
    from playwright.sync_api import expect

    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Add Connection")).to_be_visible(timeout=UI_TIMEOUT_MS)
    dialog.get_by_label("Connection ID").fill(conn_id)
    combo = dialog.get_by_role("combobox", name="Connection Type")
    combo.click()
    combo.fill(type_name)
    page.get_by_role("option", name=type_name, exact=True).click()
    # The type-specific part of the form appears once the hook metadata is applied.
    expect(dialog.get_by_role("button", name="Standard Fields", exact=True)).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    return dialog


def open_section(dialog: Locator, name: str) -> Locator:
    """Expand one accordion section of the connection form (one is open at a time); returns it.

    The section is found through its heading button: the region's ``aria-labelledby`` holds an id
    with a space in it ("...:trigger:Extra Fields"), so the region has no usable accessible name.
    """
    from playwright.sync_api import expect

    trigger = dialog.get_by_role("button", name=name, exact=True)
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()
    expect(trigger).to_have_attribute("aria-expanded", "true")
    heading = dialog.page.get_by_role("button", name=name, exact=True)  # relative to the item
    item = dialog.locator("[data-scope='accordion'][data-part='item']").filter(has=heading)
    content = item.locator("[data-part='item-content']")
    expect(content).to_be_visible()
    return content


def save_dialog(page: Page, dialog: Locator, conn_id: str) -> Locator:
    """Press Save and wait until the new or updated row is listed; returns the row."""
    from playwright.sync_api import expect

    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden(timeout=UI_TIMEOUT_MS)
    row = connection_row(page, conn_id)
    expect(row).to_be_visible(timeout=UI_TIMEOUT_MS)
    return row


def connection_row(page: Page, conn_id: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=conn_id, exact=True))


def toast(page: Page, title: str, text: str | None = None) -> Locator:
    """A notification (Chakra toast, role=status) with this title and, optionally, text in it."""
    found = page.get_by_role("status").filter(has_text=title)
    return found.filter(has_text=text) if text else found


def page_texts(page: Page) -> str:
    """Everything on the page a secret could leak into: markup, attributes and live input values."""
    values = page.evaluate(
        "() => Array.from(document.querySelectorAll('input, textarea')).map((e) => e.value)"
    )
    return "\n".join([page.content(), page.inner_text("body"), *map(str, values)])


# ------------------------------------------------------------------- Airflow 3.3.1/3.3.2 work-around
class PortlessTestWorkaround:
    """Lets the list's "Test" button work on Airflow versions that reject it for a portless connection.

    The row's Test button posts ``port: Number(connection.port)``, i.e. ``0`` for a connection without
    a port (every ``gptproto`` connection: the port field is hidden), together with the masked
    password ``***``. Airflow 3.3.1 and 3.3.2 compare that ``0`` with the stored NULL, decide the test
    targets another destination, and answer 400 "The host or port to test differs from the stored
    connection" before the hook is called; the UI shows "Bad Request". Fixed upstream in
    apache/airflow#73298 (``0`` counts as "no port").

    The browser's request always goes to the server unchanged first. Only when the answer is exactly
    that 400 for a ``port: 0`` body is it repeated with the port left out (what the fixed API
    does with ``0``), so the hook's real answer reaches the page. ``used`` records each time; on a
    fixed Airflow it stays empty and the work-around retires itself.
    """

    def __init__(self) -> None:
        self.used: list[dict[str, Any]] = []

    def install(self, page: Page) -> None:
        page.route("**/api/v2/connections/test", self._handle)

    def _handle(self, route: Route) -> None:
        response = route.fetch()
        body = json.loads(route.request.post_data or "{}")
        if response.status == 400 and PORTLESS_TEST_BUG in response.text() and body.get("port") == 0:
            body.pop("port")
            self.used.append({"connection_id": body.get("connection_id"), "first_answer": response.text()})
            warnings.warn(
                "Airflow rejected the UI's Test of a connection without a port (apache/airflow#73298, "
                "Airflow 3.3.1-3.3.2); repeated the request without port=0",
                stacklevel=1,
            )
            response = route.fetch(post_data=json.dumps(body))
        route.fulfill(response=response)
