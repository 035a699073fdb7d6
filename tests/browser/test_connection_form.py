"""The ``gptproto`` connection form, its Test button and the video link, in a real browser.

Debian's Chromium (driven by Playwright) against a real ``airflow api-server`` (plus scheduler,
dag-processor and triggerer) on loopback, and the bundled GPTProto emulator. The tests follow one
person's session in order: sign in, add ``gptproto_default`` in Admin -> Connections, test it, test
a connection with a wrong key, run the text-to-video example DAG and open its ``generate`` task.

Skipped when Chromium (``/usr/bin/chromium``) or Playwright is missing, unless
``GPTPROTO_BROWSER_TESTS=required`` (``make test-browser``, CI), which turns that into an error.
``GPTPROTO_SCREENSHOT_DIR=docs/images`` refreshes the screenshots of docs/connection.md.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_gptproto.emulator.harness import EmulatorProcess
from airflow_provider_gptproto.get_provider_info import conn_fields, ui_field_behaviour
from airflow_provider_gptproto.links.gptproto import VIDEO_URL_XCOM_KEY
from dev.airflow_stack import AirflowStack
from tests.browser.ui import (
    UI_TIMEOUT_MS,
    PortlessTestWorkaround,
    connection_row,
    open_add_connection,
    open_connections,
    open_home,
    open_section,
    page_texts,
    require_browser,
    save_dialog,
    toast,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

require_browser()

from playwright.sync_api import expect  # noqa: E402  (only importable once the check above passed)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(480)]

T2V = "gptproto_text_to_video"
TYPE_NAME = "GPTProto"  # hook-name: what the Connection Type list shows
WRONG_CONN = "gptproto_wrong_key"
WRONG_KEY = f"sk-wrong-{secrets.token_hex(8)}"
PROBE_SUFFIX = "/airflow-connection-test"  # the task id GPTProtoHook.test_connection() looks up
T2V_PROMPT = "A paper boat drifting down a rainy street, seen in a browser test"


def _probes(emulator: EmulatorProcess, since: float) -> list[dict[str, Any]]:
    """The emulator's log entries of the hook's test probe made after ``since``."""
    return [
        entry
        for entry in emulator.requests_log(endpoint="get")
        if entry["path"].endswith(PROBE_SUFFIX) and entry["ts"] >= since
    ]


def _wait_toasts_gone(page: Page) -> None:
    """Earlier notifications close on their own; wait, so each picture shows one outcome.

    A toast under the mouse pointer stays open (hover pauses its timer), and the pointer is still
    where Save was clicked, so it is moved away first.
    """
    page.mouse.move(1, 1)
    expect(page.get_by_role("status")).to_have_count(0, timeout=UI_TIMEOUT_MS)


def _press_test(page: Page, conn_id: str) -> None:
    _wait_toasts_gone(page)
    connection_row(page, conn_id).get_by_role("button", name="Test Connection").click()


def test_gptproto_connection_form(
    ui_page: Page, browser_stack: AirflowStack, browser_emulator: EmulatorProcess, shots: Path
) -> None:
    """Our labels, placeholders and defaults are shown, the unused fields are not, and it saves."""
    page = ui_page
    behaviour, fields = ui_field_behaviour(), conn_fields()
    open_connections(page, browser_stack.base_url)
    dialog = open_add_connection(page, "gptproto_default", TYPE_NAME)

    standard = open_section(dialog, "Standard Fields")
    # Exactly these standard fields, in this order: host and password relabelled, login/schema/port
    # hidden (and no "Host" or "Password" label left over from the defaults).
    expect(standard.locator("label")).to_have_text(["Description", "Base URL", "API Key"])
    for hidden in ("login", "schema", "port"):
        expect(dialog.locator(f"[name='{hidden}']")).to_have_count(0)
    base_url = standard.get_by_label("Base URL", exact=True)
    api_key = standard.get_by_label("API Key", exact=True)
    expect(base_url).to_have_attribute("placeholder", behaviour["placeholders"]["host"])
    expect(api_key).to_have_attribute("placeholder", behaviour["placeholders"]["password"])
    expect(api_key).to_have_attribute("type", "password")
    expect(base_url).to_have_value("")

    extras = open_section(dialog, "Extra Fields")
    # The boolean field's switch is a label of its own, without text.
    expect(extras.locator("label")).to_have_text([*(field["label"] for field in fields.values()), ""])
    expect(extras.get_by_label(fields["timeout"]["label"])).to_have_value("60")
    expect(extras.get_by_label(fields["retry_limit"]["label"])).to_have_value("5")
    expect(extras.get_by_label(fields["max_bytes"]["label"])).to_have_value(str(4 * 2**30))
    expect(extras.get_by_label(fields["allow_private_urls"]["label"])).not_to_be_checked()
    for field in fields.values():
        expect(extras).to_contain_text(field["description"])
    dialog.screenshot(path=str(shots / "connection-form-extras.png"), animations="disabled")

    open_section(dialog, "Standard Fields")
    base_url.fill(browser_emulator.url)
    api_key.fill(browser_emulator.api_key or "")
    expect(api_key).to_have_attribute("type", "password")  # typed, but never shown
    dialog.screenshot(path=str(shots / "connection-form.png"), animations="disabled")

    row = save_dialog(page, dialog, "gptproto_default")
    expect(row.get_by_role("cell", name=TYPE_NAME.lower(), exact=True)).to_be_visible()
    expect(row.get_by_role("cell", name=browser_emulator.url, exact=True)).to_be_visible()

    stored = browser_stack.client.get("/connections/gptproto_default")
    assert stored["conn_type"] == "gptproto"
    assert stored["host"] == browser_emulator.url
    assert stored["port"] is None and not stored["login"] and not stored["schema"]
    # The form writes the extra fields as plain keys, which is what the hook reads.
    assert json.loads(stored["extra"]) == {
        "timeout": 60,
        "retry_limit": 5,
        "max_bytes": 4 * 2**30,
        "allow_private_urls": False,
    }


def test_test_button_accepts_the_key(
    ui_page: Page,
    default_connection: str,
    browser_stack: AirflowStack,
    browser_emulator: EmulatorProcess,
    test_workaround: PortlessTestWorkaround,
    shots: Path,
) -> None:
    """Test (``[core] test_connection=Enabled``): the hook's probe reaches the emulator and passes."""
    page = ui_page
    open_connections(page, browser_stack.base_url)
    since = time.time()
    _press_test(page, default_connection)

    passed = toast(page, "Test Connection Successful")
    expect(passed).to_be_visible()
    expect(passed).to_contain_text(f"Connected to {browser_emulator.url}: the API key was accepted.")
    expect(toast(page, "Test Connection Failed")).to_have_count(0)
    assert browser_emulator.api_key and browser_emulator.api_key not in page_texts(page)
    page.screenshot(path=str(shots / "connection-test-success.png"), animations="disabled")

    # It was the provider's hook that answered: one authenticated probe, answered 404 (= key accepted).
    (probe,) = _probes(browser_emulator, since)
    assert probe["status"] == 404 and probe["auth_present"], probe
    if test_workaround.used:
        print(f"\nAirflow needed the port=0 work-around (apache/airflow#73298): {test_workaround.used}")


def test_test_button_reports_a_rejected_key_without_echoing_it(
    ui_page: Page, browser_stack: AirflowStack, browser_emulator: EmulatorProcess, shots: Path
) -> None:
    """A wrong key: "rejected" in the failure message, and the key appears nowhere on the page."""
    page = ui_page
    open_connections(page, browser_stack.base_url)
    dialog = open_add_connection(page, WRONG_CONN, TYPE_NAME)
    dialog.get_by_label("Base URL", exact=True).fill(browser_emulator.url)
    dialog.get_by_label("API Key", exact=True).fill(WRONG_KEY)
    save_dialog(page, dialog, WRONG_CONN)

    since = time.time()
    _press_test(page, WRONG_CONN)
    failed = toast(page, "Test Connection Failed")
    expect(failed).to_be_visible()
    expect(failed).to_contain_text("The API key was rejected by the server")
    expect(toast(page, "Test Connection Successful")).to_have_count(0)
    assert WRONG_KEY not in page_texts(page)
    page.screenshot(path=str(shots / "connection-test-failure.png"), animations="disabled")
    (probe,) = _probes(browser_emulator, since)
    assert probe["status"] == 401 and probe["auth_present"], probe

    # Some servers quote the key they were given in the error; the page must still not show it.
    browser_emulator.add_fault(
        endpoint="get",
        action="status",
        status=401,
        code="invalid_api_key",
        message=f"Incorrect API key provided: {WRONG_KEY}",
        count=1,
    )
    try:
        _press_test(page, WRONG_CONN)
        echoed = toast(page, "Test Connection Failed", "Incorrect API key provided")
        expect(echoed).to_be_visible()
        expect(echoed).to_contain_text("The API key was rejected by the server")
        assert WRONG_KEY not in page_texts(page)
    finally:
        browser_emulator.clear_faults()


def test_task_page_links_to_the_video(
    ui_page: Page,
    default_connection: str,
    browser_stack: AirflowStack,
    browser_emulator: EmulatorProcess,
    shots: Path,
    tmp_path: Path,
) -> None:
    """After a run of the example DAG, the generate task's page offers "GPTProto video" -> the MP4."""
    client = browser_stack.client
    client.unpause(T2V)
    run_id = client.trigger(T2V, {"prompt": T2V_PROMPT, "output_dir": str(tmp_path)})
    client.wait_for_run(T2V, run_id, timeout=240, poll=1.0)
    video_url = client.xcom(T2V, run_id, "generate", key=VIDEO_URL_XCOM_KEY)
    assert isinstance(video_url, str) and video_url.startswith(f"{browser_emulator.url}/"), video_url

    page = ui_page
    open_home(page, browser_stack.base_url)
    page.get_by_role("link", name="Dags", exact=True).click()
    page.get_by_role("link", name=T2V, exact=True).click()
    # The UI may go straight on to the task it last showed (e.g. .../tasks/download): any DAG page will do.
    page.wait_for_url(re.compile(rf"/dags/{T2V}(/.*)?$"), timeout=UI_TIMEOUT_MS)
    # The grid cell of this run's generate task, then the task instance's Details tab.
    page.locator(f'a[href$="/runs/{run_id}/tasks/generate"]').first.click()
    page.wait_for_url(re.compile(r"/tasks/generate$"), timeout=UI_TIMEOUT_MS)
    page.get_by_role("link", name="Details", exact=True).click()
    expect(page.get_by_text("Extra Links", exact=True)).to_be_visible()

    link = page.get_by_role("link", name="GPTProto video", exact=True)
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", video_url)
    page.screenshot(path=str(shots / "task-video-link.png"), animations="disabled")

    # The link really is the video: the emulator serves an MP4 there.
    response = page.request.get(video_url)
    assert response.status == 200, response.status
    assert response.body()[4:8] == b"ftyp"
