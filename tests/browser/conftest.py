"""Fixtures of the browser tests: one emulator, one real Airflow, one Chromium, one signed-in page.

Everything is module-scoped: starting Airflow dominates the run time, and the tests follow one
person's session (configure the connection, test it, run the DAG, look at the task).
Playwright is imported inside the fixtures so that collecting this folder works without it; the
test module skips (or, with ``GPTPROTO_BROWSER_TESTS=required``, fails) when it is missing.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_gptproto.emulator.harness import EmulatorProcess, start_emulator
from dev.airflow_stack import AirflowStack
from tests.browser.ui import (
    CHROMIUM,
    CHROMIUM_ARGS,
    UI_TIMEOUT_MS,
    VIEWPORT,
    PortlessTestWorkaround,
    login,
    screenshot_dir,
)

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

T2V = "gptproto_text_to_video"


@pytest.fixture(scope="module")
def browser_emulator() -> Iterator[EmulatorProcess]:
    """A dedicated emulator (queue 1 s, run 3 s) whose request log only this module writes to."""
    with start_emulator(queue_seconds=1.0, run_seconds=3.0) as emu:
        yield emu


@pytest.fixture(scope="module")
def browser_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """Real api-server, scheduler, dag-processor and triggerer with ``[core] test_connection=Enabled``.

    No ``AIRFLOW_CONN_GPTPROTO_DEFAULT``: the DAG run uses the connection made in the browser.
    DAGs start paused so that only the run this module triggers ever happens.
    """
    stack = AirflowStack(
        tmp_path_factory.mktemp("browser-airflow-home"),
        wait_for_dags=(T2V,),
        dags_paused=True,
        config={"core": {"test_connection": "Enabled"}},
    )
    try:
        stack.start()
        print("\nAirflow stack ready:", {name: round(secs, 1) for name, secs in stack.timings.items()})
        yield stack
    finally:
        leftovers = stack.stop()
        assert not leftovers, f"processes survived the stack: {leftovers}"


@pytest.fixture(scope="module")
def browser_context() -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, in a fresh profile that is deleted afterwards."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)

    with (
        tempfile.TemporaryDirectory(prefix="gptproto-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=VIEWPORT,  # type: ignore[arg-type]
            locale="en-US",
            timezone_id="UTC",
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def test_workaround() -> PortlessTestWorkaround:
    return PortlessTestWorkaround()


@pytest.fixture(scope="module")
def ui_page(
    browser_context: BrowserContext, browser_stack: AirflowStack, test_workaround: PortlessTestWorkaround
) -> Page:
    """One tab, signed in through the login page as the stack's admin."""
    page = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    test_workaround.install(page)
    login(page, browser_stack.base_url, browser_stack.admin_user, browser_stack.admin_password)
    return page


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: ``$GPTPROTO_SCREENSHOT_DIR`` (e.g. docs/images) or a temp dir."""
    return screenshot_dir(tmp_path_factory.mktemp("screenshots"))


@pytest.fixture(scope="module")
def default_connection(browser_stack: AirflowStack, browser_emulator: EmulatorProcess) -> str:
    """``gptproto_default`` pointing at the emulator.

    The form test makes it in the browser; when a later test runs on its own, it is made over REST.
    """
    client = browser_stack.client
    found = client.request("GET", "/connections/gptproto_default", expect=(200, 404))
    if not (isinstance(found, dict) and found.get("connection_id") == "gptproto_default"):
        body = {
            "connection_id": "gptproto_default",
            "conn_type": "gptproto",
            "host": browser_emulator.url,
            "password": browser_emulator.api_key,
            "extra": json.dumps({"timeout": 60, "retry_limit": 5}),
        }
        client.request("POST", "/connections", json=body, expect=(201,))
    return "gptproto_default"


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test body failed, for the screenshot fixture below."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
def _screenshot_on_failure(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Keep a picture of the page a failed test left behind (the path is printed)."""
    yield
    if "ui_page" not in request.fixturenames or not request.node.stash.get(_CALL_FAILED, False):
        return
    page: Page = request.getfixturevalue("ui_page")
    path = tmp_path_factory.getbasetemp() / "browser-failures" / f"{request.node.name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(path), full_page=True)
        print(f"\nscreenshot of the failed page: {path} ({page.url})")
    except Exception as exc:  # diagnostics must never hide the real failure
        print(f"\nno screenshot of the failed page: {exc}")
