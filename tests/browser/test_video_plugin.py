"""The UI plugin in Chromium: the Video tab plays the stored video, the gallery lists the runs' videos.

Debian's Chromium (Playwright) against one real Airflow stack for the module, with finished runs
(``tests/support/video_plugin_stack.py``), signed in through the login page. The security paths are
tested over HTTP in ``tests/e2e/test_ui_plugin.py``; here the same pages are used as a person would.
``GPTPROTO_SCREENSHOT_DIR=docs/images`` refreshes the pictures of docs/ui.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from airflow_provider_gptproto.plugins import pages
from airflow_provider_gptproto.plugins.records import VideoRecord
from tests.browser.ui import UI_TIMEOUT_MS, login, require_browser
from tests.support.video_plugin_stack import (
    ALPHA,
    BATCH,
    BETA,
    HOSTILE,
    SIGNED_ONLY,
    VideoPluginStack,
)

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Dialog, Frame, FrameLocator, Page

require_browser()

from playwright.sync_api import expect  # noqa: E402  (only importable once the check above passed)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(600)]

VIDEO_SECONDS = 5.0  # the DAGs ask for "5s"
# The prompt of every result the hostile DAG records (tests/support/video_plugin_dags/ui_videos.py).
HOSTILE_PROMPT = '<img src=x onerror=alert(1)> "><script>alert(1)</script>'


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


def test_a_hostile_prompt_in_a_task_result_stays_text_in_the_video_tab(
    ui_page: Page, plugin: VideoPluginStack
) -> None:
    """The hostile DAG's six results carry markup as their prompt: shown as text, no alert opens."""
    page = ui_page
    dialogs: list[str] = []

    def record_dialog(dialog: Dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", record_dialog)
    try:
        # The frame has loaded (every image too, broken ones included): an onerror would have run.
        frame = _open_video_tab(page, plugin, HOSTILE, "record_hostile_paths")
        expect(frame.get_by_text(HOSTILE_PROMPT, exact=True)).to_have_count(6)
        assert frame.locator("img[src='x']").count() == 0
        assert frame.evaluate("() => document.scripts.length") == 2  # the page's own two
        assert dialogs == []
    finally:
        page.remove_listener("dialog", record_dialog)


def test_gallery_lists_the_runs_videos(ui_page: Page, plugin: VideoPluginStack) -> None:
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

    frame.get_by_role("combobox", name="DAG").select_option(BETA)
    expect(frame.locator("article.card")).to_have_count(1)
    expect(frame.locator("article.card")).to_contain_text("A paper boat")

    # A run link opens the run in the whole window, not inside the frame.
    frame.get_by_role("link", name=plugin.run_id(BETA), exact=True).click()
    page.wait_for_url(f"**/dags/{BETA}/runs/**", timeout=UI_TIMEOUT_MS)
    assert "/plugin/" not in page.url


def _gallery(page: Page, plugin: VideoPluginStack, theme: str = "light") -> FrameLocator:
    """The gallery in Airflow's UI, with the UI in ``theme`` (Airflow keeps it in localStorage)."""
    page.goto(plugin.stack.base_url + "/")
    page.evaluate("(theme) => localStorage.setItem('theme', theme)", theme)
    page.goto(plugin.stack.base_url + "/plugin/gptproto-videos")
    page.wait_for_function(
        "(dark) => document.documentElement.classList.contains('dark') === dark",
        arg=theme == "dark",
        timeout=UI_TIMEOUT_MS,
    )
    frame = page.frame_locator("iframe[title='GPTProto videos']")
    expect(frame.locator("article.card")).to_have_count(3)
    loaded = "(imgs) => imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0)"
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while not frame.locator("img").evaluate_all(loaded):
        assert time.monotonic() < deadline, "the poster frames did not load"
        page.wait_for_timeout(200)
    return frame


@pytest.mark.slow
def test_clicking_a_card_plays_its_video(ui_page: Page, plugin: VideoPluginStack) -> None:
    page = ui_page
    frame = _gallery(page, plugin)
    frame.locator("article.card").filter(has_text="A red fox").get_by_role(
        "button", name="Play the video"
    ).click()
    dialog = frame.locator("dialog[open]")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("A red fox running through fresh snow at dawn")
    video = frame.locator("dialog video")
    video.evaluate("(v) => { v.muted = true; }")  # headless Chromium has no audio output
    playing = "(v) => v.readyState >= 2 && !v.paused && v.currentTime > 0.5"
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while not video.evaluate(playing):
        assert time.monotonic() < deadline, video.evaluate("(v) => [v.src, v.readyState, v.paused, v.error]")
        page.wait_for_timeout(200)
    assert abs(video.evaluate("(v) => v.duration") - VIDEO_SECONDS) < 0.5
    page.keyboard.press("Escape")
    expect(frame.locator("dialog[open]")).to_have_count(0)
    assert video.evaluate("(v) => v.paused")

    # The batch's card has no single video: it opens the batch task's Video tab, in the whole window.
    frame.locator("article.card").filter(has_text="Batch: 2 of 2").get_by_role(
        "link", name="Open the task's Video tab"
    ).click()
    page.wait_for_url(f"**/dags/{BATCH}/runs/**/tasks/batch/plugin/gptproto-video", timeout=UI_TIMEOUT_MS)
    tab = _plugin_frame(page, "/gptproto/ti/")
    expect(tab.locator("video")).to_have_count(2)


# Where the poster's picture is painted inside its <img> box, from object-fit: the whole frame must
# be visible (nothing cropped) and undistorted (one scale for both axes).
PAINTED = """(img) => {
  const fit = getComputedStyle(img).objectFit, w = img.clientWidth, h = img.clientHeight;
  const nw = img.naturalWidth, nh = img.naturalHeight;
  const scale = { contain: Math.min(w / nw, h / nh), cover: Math.max(w / nw, h / nh), none: 1,
    "scale-down": Math.min(1, w / nw, h / nh) }[fit];
  const [sx, sy] = fit === "fill" ? [w / nw, h / nh] : [scale, scale];
  return { fit, w, h, nw, nh, shownW: nw * sx, shownH: nh * sy, sx, sy };
}"""


@pytest.mark.slow
def test_posters_show_the_whole_frame_of_any_shape(ui_page: Page, plugin: VideoPluginStack) -> None:
    frame = _gallery(ui_page, plugin)
    shapes = {}
    for prompt in ("A red fox", "A paper boat"):
        card = frame.locator("article.card").filter(has_text=prompt)
        box = card.evaluate("(c) => c.getBoundingClientRect().toJSON()")
        img = card.locator("img")
        painted = img.evaluate(PAINTED)
        shapes[prompt] = (painted["nw"], painted["nh"])
        assert painted["shownW"] <= painted["w"] + 1 and painted["shownH"] <= painted["h"] + 1, painted
        assert abs(painted["sx"] - painted["sy"]) < 0.01, painted
        assert max(painted["shownW"] / painted["w"], painted["shownH"] / painted["h"]) > 0.98, painted
        inner = img.evaluate("(i) => i.getBoundingClientRect().toJSON()")
        assert inner["left"] >= box["left"] - 1 and inner["right"] <= box["right"] + 1, (inner, box)
    assert shapes["A paper boat"][0] == shapes["A paper boat"][1], shapes  # the 768:768 video
    assert shapes["A red fox"][0] > shapes["A red fox"][1], shapes  # the 1280:768 one


# Airflow's own look, resolved in the UI's document: its theme variables applied to a probe element.
AIRFLOW_LOOK = """() => {
  const probe = document.createElement("div");
  probe.style.cssText = "background: var(--chakra-colors-bg); color: var(--chakra-colors-fg); "
    + "border: 1px solid var(--chakra-colors-border); border-radius: var(--chakra-radii-l2); "
    + "font-family: var(--chakra-fonts-body)";
  document.body.appendChild(probe);
  const s = getComputedStyle(probe);
  const look = { bg: s.backgroundColor, fg: s.color, border: s.borderTopColor, radius: s.borderTopLeftRadius,
    font: s.fontFamily };
  probe.remove();
  return look;
}"""
CONTROL_LOOK = """(el) => {
  const s = getComputedStyle(el);
  return { bg: s.backgroundColor, fg: s.color, border: s.borderTopColor, radius: s.borderTopLeftRadius,
    font: s.fontFamily, height: el.getBoundingClientRect().height, appearance: s.appearance };
}"""


@pytest.mark.slow
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_gallery_filter_and_paging_look_like_airflow(
    ui_page: Page, plugin: VideoPluginStack, shots: Path, theme: str
) -> None:
    page = ui_page
    frame = _gallery(page, plugin, theme)
    airflow = page.evaluate(AIRFLOW_LOOK)
    body = frame.locator("body").evaluate(CONTROL_LOOK)
    assert (body["bg"], body["fg"], body["font"]) == (airflow["bg"], airflow["fg"], airflow["font"]), (
        body,
        airflow,
    )
    select = frame.get_by_role("combobox", name="DAG")
    controls = [select, frame.locator("nav.pager .button").first]
    for control in controls:
        look = control.evaluate(CONTROL_LOOK)
        assert (look["border"], look["radius"], look["fg"], look["font"]) == (
            airflow["border"],
            airflow["radius"],
            airflow["fg"],
            airflow["font"],
        ), (look, airflow)
        assert look["bg"] in (airflow["bg"], "rgba(0, 0, 0, 0)"), (look, airflow)
        assert 32 <= look["height"] <= 40, look  # Chakra's sm/md control heights
    assert select.evaluate(CONTROL_LOOK)["appearance"] == "none", "the browser's own select, not Airflow's"
    # A card's border and muted text follow the theme too.
    card = frame.locator("article.card").first.evaluate(CONTROL_LOOK)
    assert card["border"] == airflow["border"], (card, airflow)
    name = "plugin-videos-gallery.png" if theme == "light" else "plugin-videos-gallery-dark.png"
    page.screenshot(path=str(shots / name), animations="disabled")
    page.evaluate("() => localStorage.removeItem('theme')")


@pytest.mark.slow
@pytest.mark.parametrize("hostile", ["<img src=x onerror=alert(1)>", '"><script>alert(1)</script>'])
def test_a_hostile_prompt_is_shown_as_text_and_opens_no_dialog(
    browser_context: BrowserContext, hostile: str
) -> None:
    """The plugin's own Video tab and gallery, with hostile text in every field a DAG controls.

    No Airflow stack: the pages are rendered by the plugin's code and loaded into Chromium as they
    are, so a script that slipped through would run and open an alert.
    """
    record = VideoRecord(
        f"dag {hostile}", f"run {hostile}", f"task {hostile}", prompt=hostile, model=hostile, event_id=1
    )
    documents = {
        "Video tab": pages.video_tab(f"task {hostile}", [(record, None, None, f"Expired ({hostile})")]),
        "gallery": pages.gallery(
            "", [(record, None, "/video"), (record, None, None)], [f"dag {hostile}"], None, 0, 24, 2
        ),
    }
    dialogs: list[str] = []

    def record_dialog(dialog: Dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page = browser_context.new_page()
    page.on("dialog", record_dialog)
    try:
        for name, html in documents.items():
            # "load" waits for every image, broken ones too: an onerror handler would have run by then.
            page.set_content(html, wait_until="load")
            expect(page.get_by_text(hostile, exact=True).first).to_be_visible()
            assert page.locator("img[src='x']").count() == 0, name
            assert page.evaluate("() => document.scripts.length") == 2, name  # the page's own two
            assert dialogs == [], name
    finally:
        page.close()
