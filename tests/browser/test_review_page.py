"""The plugin's review page in Chromium, against a real Airflow whose review task waits for input.

Two prompts, two takes each (different seeds), downloaded, then a GPTProtoReviewVideosOperator
(tests/support/review_page_dags). A person opens the review page from the task's Video tab, the
takes play, take 2 of prompt 1 is picked and approved: Airflow records the answer with who gave
it, and the task resumes with that choice. ``GPTPROTO_SCREENSHOT_DIR=docs/images`` refreshes
docs/images/review-page.png.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
import requests

from airflow_provider_gptproto.emulator.harness import EmulatorProcess, start_emulator
from dev.airflow_stack import REPO_ROOT, AirflowClient, AirflowStack
from tests.browser.ui import UI_TIMEOUT_MS, login, require_browser
from tests.support.reliability_stack import wait_until
from tests.support.video_plugin_stack import _entry_point_shim

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Frame, Page

require_browser()

from playwright.sync_api import expect  # noqa: E402  (only importable once the check above passed)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]

DAG_ID, OUTSIDER = "review_page_takes", "alice"  # alice may read another DAG only
WAIT = 300.0


@pytest.fixture(scope="module")
def review_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AirflowStack, AirflowClient, str]]:
    """Emulator + Airflow with the review DAG; yields the stack, alice's client and the waiting run."""
    work = tmp_path_factory.mktemp("review-page")
    output = work / "videos"
    output.mkdir()
    alice_password = secrets.token_urlsafe(12)
    # The "ark" dialect (the upstream task object) reports usage, shown per take.
    with start_emulator(dialect="ark", queue_seconds=0.5, run_seconds=1.0) as emulator:
        stack = _stack(work, output, emulator)
        alice = AirflowClient(stack.base_url, OUTSIDER, alice_password)
        try:
            stack.prepare()
            passwords = stack.home / "passwords.json"
            passwords.write_text(json.dumps({**json.loads(passwords.read_text()), OUTSIDER: alice_password}))
            stack.start()
            run_id = stack.client.trigger(DAG_ID)
            wait_until(
                lambda: _review_ti(stack.client, run_id)["state"] == "awaiting_input",
                WAIT,
                "the review task to wait for input",
            )
            yield stack, alice, run_id
        finally:
            alice.close()
            leftovers = stack.stop()
            assert not leftovers, f"processes survived the stack: {leftovers}"


def _stack(work: Path, output: Path, emulator: EmulatorProcess) -> AirflowStack:
    conn = {"conn_type": "gptproto", "host": emulator.url, "password": emulator.api_key}
    shim = _entry_point_shim(work / "shim")
    return AirflowStack(
        work / "home",
        dags_folder=Path(__file__).parents[1] / "support" / "review_page_dags",
        wait_for_dags=(DAG_ID,),
        dags_paused=False,
        extra_env={
            "AIRFLOW_CONN_GPTPROTO_DEFAULT": json.dumps(conn),
            "AIRFLOW_VAR_GPTPROTO_OUTPUT_DIR": str(output),
            "GPTPROTO_TEST_DAG_ACCESS": f"{OUTSIDER}=some_other_dag",
            "PYTHONPATH": ":".join(filter(None, [str(REPO_ROOT), shim])),
        },
        config={
            "core": {
                "auth_manager": "tests.support.dag_access_auth_manager.DagAccessAuthManager",
                "simple_auth_manager_users": f"admin:admin,{OUTSIDER}:viewer",
            },
            "gptproto": {"ui_media_roots": str(output)},
        },
    )


def _review_ti(client: AirflowClient, run_id: str) -> dict[str, Any]:
    found = client.get(f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/review")
    assert isinstance(found, dict)
    return found


def _review_path(run_id: str) -> str:
    return f"/gptproto/review/{DAG_ID}/{quote(run_id, safe='')}/review?map_index=-1"


@pytest.fixture(scope="module")
def ui_page(browser_context: BrowserContext, review_stack: tuple[AirflowStack, AirflowClient, str]) -> Page:
    """Signed in as admin; named like conftest's so a failed test leaves a screenshot of it."""
    stack = review_stack[0]
    page = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    login(page, stack.base_url, stack.admin_user, stack.admin_password)
    return page


def _frame(page: Page, path_part: str) -> Frame:
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while not (frames := [f for f in page.frames if path_part in f.url]):
        assert time.monotonic() < deadline, f"no frame loaded {path_part}: {[f.url for f in page.frames]}"
        page.wait_for_timeout(100)
    frames[0].wait_for_load_state()
    return frames[0]


def test_the_video_tab_of_the_review_task_opens_its_review_page(
    ui_page: Page, review_stack: tuple[AirflowStack, AirflowClient, str]
) -> None:
    stack, _, run_id = review_stack
    page = ui_page
    page.goto(f"{stack.base_url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/review")
    page.get_by_role("link", name="Video", exact=True).click()
    tab = _frame(page, "/gptproto/ti/")
    tab.get_by_role("link", name="open the review page").click()
    review = _frame(page, "/gptproto/review/")
    expect(review.get_by_role("heading", name="Review: review")).to_be_visible()
    expect(review.locator("video")).to_have_count(4)


def test_a_user_without_access_to_the_dag_gets_403(
    review_stack: tuple[AirflowStack, AirflowClient, str],
) -> None:
    stack, alice, run_id = review_stack
    url = stack.base_url + _review_path(run_id)
    assert (
        requests.get(url, headers={"Authorization": f"Bearer {alice.token()}"}, timeout=30).status_code == 403
    )
    admin = requests.get(url, headers={"Authorization": f"Bearer {stack.client.token()}"}, timeout=30)
    assert admin.status_code == 200 and "take 2" in admin.text


def test_takes_play_and_the_pick_is_recorded_by_airflow(
    ui_page: Page,
    browser_context: BrowserContext,
    review_stack: tuple[AirflowStack, AirflowClient, str],
    shots: Path,
) -> None:
    stack, _, run_id = review_stack
    page = ui_page
    page.goto(stack.base_url + _review_path(run_id))  # as the link in the task's "Required actions" body
    groups = page.locator("fieldset.group")
    expect(groups).to_have_count(2)
    videos = page.locator("video")
    expect(videos).to_have_count(4)
    for index in range(4):
        video = videos.nth(index)
        assert "/gptproto/media/ti/" in (video.get_attribute("src") or "")  # the stored copies
        started = video.evaluate("async (v) => { v.muted = true; await v.play(); return v.currentTime; }")
        page.wait_for_function(
            "([v, t]) => v.readyState >= 2 && v.currentTime > t + 0.3",
            arg=[video.element_handle(), started],
            timeout=UI_TIMEOUT_MS,
        )
        video.evaluate("(v) => { v.pause(); v.currentTime = 0.5; }")
    expect(groups.nth(0)).to_contain_text("A red fox running through fresh snow at dawn")
    expect(groups.nth(0)).to_contain_text("Seed7")  # <dt>Seed</dt><dd>7</dd>
    expect(groups.nth(0)).to_contain_text("Seed8")
    expect(groups.nth(0)).to_contain_text("total_tokens")

    # A second tab opened before the answer: its late answer is refused by Airflow, and says so.
    late = browser_context.new_page()
    late.goto(stack.base_url + _review_path(run_id))

    groups.nth(0).get_by_label("take 2").check()
    page.wait_for_function("() => document.readyState === 'complete'")
    page.screenshot(path=str(shots / "review-page.png"), full_page=True, animations="disabled")
    page.get_by_role("button", name="Approve").click()
    status = page.locator("#review-status")
    expect(status).to_have_text(f"Answered Approve by {stack.admin_user}.")

    detail = stack.client.get(
        f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/review/-1/hitlDetails"
    )
    assert detail["chosen_options"] == ["Approve"]
    assert detail["params_input"] == {"pick_1": "take 2", "pick_2": "take 1"}
    assert detail["responded_by_user"]["name"] == stack.admin_user

    try:
        late.get_by_role("button", name="Reject").click()
        expect(late.locator("#review-status")).to_contain_text("Airflow refused the answer (409)")
    finally:
        late.close()

    result = wait_until(
        lambda: (
            _review_ti(stack.client, run_id)["state"] == "success"
            and stack.client.xcom(DAG_ID, run_id, "review")
        ),
        WAIT,
        "the review task's result",
    )
    assert result["approved"] is True
    assert [(c["group"], c["take"], c["seed"]) for c in result["chosen"]] == [(1, 2, 8), (2, 1, 7)]
    page.reload()
    expect(page.locator("#review-status")).to_contain_text(f"Answered Approve by {stack.admin_user} on ")
    expect(page.get_by_role("button")).to_have_count(0)
