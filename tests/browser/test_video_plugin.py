"""The UI plugin in Chromium: the Video tab plays the stored video, the gallery lists the runs' videos.

Debian's Chromium (Playwright) against one real Airflow stack for the module, with finished runs
(``tests/support/video_plugin_stack.py``), signed in through the login page. The security paths are
tested over HTTP in ``tests/e2e/test_ui_plugin.py``; here the same pages are used as a person would.
``GPTPROTO_SCREENSHOT_DIR=docs/images`` refreshes the README's pictures.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from tests.browser.ui import UI_TIMEOUT_MS, login, require_browser
from tests.support.video_plugin_stack import (
    ALPHA,
    BATCH,
    BETA,
    SIGNED_ONLY,
    VideoPluginStack,
)

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Frame, Page

require_browser()

from playwright.sync_api import expect  # noqa: E402  (only importable once the check above passed)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(600)]

VIDEO_SECONDS = 5.0  # the DAGs ask for "5s"


@pytest.fixture(scope="module")
def plugin(video_plugin: VideoPluginStack) -> VideoPluginStack:
    """The shared UI-plugin stack (tests/conftest.py), started once for this module and its sibling."""
    return video_plugin


@pytest.fixture(scope="module")
def ui_page(browser_context: BrowserContext, plugin: VideoPluginStack) -> Page:
    """Signed in as admin; named like conftest's so a failed test leaves a screenshot of it."""
    page = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    login(page, plugin.stack.base_url, plugin.stack.admin_user, plugin.stack.admin_password)
    return page


def _plugin_frame(page: Page, path_part: str) -> Frame:
    """The iframe the UI loads a plugin view into, once its document has loaded."""
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while not (frames := [f for f in page.frames if path_part in f.url]):
        assert time.monotonic() < deadline, f"no frame loaded {path_part}: {[f.url for f in page.frames]}"
        page.wait_for_timeout(100)
    frames[0].wait_for_load_state()
    return frames[0]


def _open_video_tab(page: Page, plugin: VideoPluginStack, dag_id: str, task_id: str) -> Frame:
    run = quote(plugin.run_id(dag_id), safe="")
    page.goto(f"{plugin.stack.base_url}/dags/{dag_id}/runs/{run}/tasks/{task_id}")
    # The plugin's tab is a link named exactly "Video" ("GPTProto video" is the extra link's button).
    page.get_by_role("link", name="Video", exact=True).click()
    page.wait_for_url("**/plugin/gptproto-video**", timeout=UI_TIMEOUT_MS)
    return _plugin_frame(page, "/gptproto/ti/")


def test_video_tab_plays_the_stored_video(ui_page: Page, plugin: VideoPluginStack, shots: Path) -> None:
    page = ui_page
    frame = _open_video_tab(page, plugin, ALPHA, "download")
    video = frame.locator("video")
    expect(video).to_have_attribute(
        "src",
        f"/gptproto/media/ti/{ALPHA}/{quote(plugin.run_id(ALPHA), safe='')}/download/0/video?map_index=-1",
    )
    frame.wait_for_function("() => document.querySelector('video').readyState >= 2", timeout=UI_TIMEOUT_MS)
    duration = video.evaluate("(v) => v.duration")
    assert abs(duration - VIDEO_SECONDS) < 0.5, duration
    started = video.evaluate("async (v) => { v.muted = true; await v.play(); return v.currentTime; }")
    frame.wait_for_function(
        "(t) => document.querySelector('video').currentTime > t + 0.5", arg=started, timeout=UI_TIMEOUT_MS
    )
    video.evaluate("(v) => { v.pause(); v.currentTime = 2.5; }")  # seeking needs Range requests
    frame.wait_for_function(
        "() => { const v = document.querySelector('video'); return !v.seeking && v.currentTime >= 2.4; }",
        timeout=UI_TIMEOUT_MS,
    )
    body = frame.locator("body")
    for text in ("A red fox running through fresh snow at dawn", "1280:768", "SHA-256", "Bytes"):
        expect(body).to_contain_text(text)
    expect(frame.get_by_role("link", name="Download the stored file")).to_be_visible()
    page.screenshot(path=str(shots / "plugin-video-tab.png"), animations="disabled")


def test_video_tab_says_when_the_link_expired(ui_page: Page, plugin: VideoPluginStack) -> None:
    page = ui_page
    frame = _open_video_tab(page, plugin, SIGNED_ONLY, "generate")
    frame.wait_for_function(
        "() => document.body.innerText.includes('The video link expired')", timeout=UI_TIMEOUT_MS
    )
    expect(frame.locator("video")).to_have_count(0)


def test_gallery_lists_the_runs_videos(ui_page: Page, plugin: VideoPluginStack, shots: Path) -> None:
    page = ui_page
    page.goto(plugin.stack.base_url + "/")
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="GPTProto videos").click()
    page.wait_for_url("**/plugin/gptproto-videos**", timeout=UI_TIMEOUT_MS)
    # Located afresh on every use: the UI mirrors a nav view's location into its own URL, which
    # can remount the iframe, so a Frame object taken early may be detached later.
    frame = page.frame_locator("iframe[title='GPTProto videos']")
    cards = frame.locator("article.card")
    expect(cards).to_have_count(3)
    for dag_id, prompt in ((ALPHA, "A red fox"), (BETA, "A paper boat"), (BATCH, "Batch: 2 of 2 videos")):
        card = cards.filter(has_text=prompt)
        expect(card.get_by_role("link", name=dag_id, exact=True)).to_be_visible()
        expect(card.get_by_role("link", name=plugin.run_id(dag_id), exact=True)).to_be_visible()
    posters_loaded = "(imgs) => imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0)"
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while not frame.locator("img").evaluate_all(posters_loaded):
        assert time.monotonic() < deadline, "the poster frames did not load"
        page.wait_for_timeout(200)
    page.screenshot(path=str(shots / "plugin-videos-gallery.png"), animations="disabled")

    frame.get_by_role("combobox", name="DAG").select_option(BETA)
    expect(frame.locator("article.card")).to_have_count(1)
    expect(frame.locator("article.card")).to_contain_text("A paper boat")

    # A run link opens the run in the whole window, not inside the frame.
    frame.get_by_role("link", name=plugin.run_id(BETA), exact=True).click()
    page.wait_for_url(f"**/dags/{BETA}/runs/**", timeout=UI_TIMEOUT_MS)
    assert "/plugin/" not in page.url
