"""Endpoints, lifecycle, cancel/delete semantics and auth, over real HTTP."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import requests

STAY_QUEUED = "[[queue:60]]"
STAY_RUNNING = "[[queue:0]] [[run:60]]"
DONE_NOW = "[[queue:0]] [[run:0]]"
TASKS = "/api/v3/contents/generations/tasks"
ISO_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def test_create_seed_format_answers_the_seed_envelope(api: Any) -> None:
    body = {
        "model": "seedance-1-0-lite-i2v-250428",
        "prompt": "daisies --ratio 16:9 --resolution 720p --duration 5 --camerafixed false",
        "loop": False,
        "duration": "10s",
        "dimension": "768:768",
        "seed": 12345,
        "logo": {"position": "bottom-right", "url": "https://example.com/logo.png", "opacity": 0.5},
    }
    response = api.create(body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert payload == {
        "code": 0,
        "message": "Success",
        "data": {"task_id": payload["data"]["task_id"], "status": "pending"},
    }
    assert payload["data"]["task_id"].startswith("task_")
    task = api.task(payload["data"]["task_id"])
    assert (
        task["request"]["width"] == 768 and task["request"]["height"] == 768
    )  # dimension beats prompt flags
    assert task["request"]["duration"] == 10
    assert task["request"]["logo"]["opacity"] == 0.5  # unknown logo keys pass through


def test_create_upstream_content_format_is_accepted_in_envelope_dialect(api: Any) -> None:
    body = {
        "model": "doubao-seedance-1-0-pro-250528",
        "content": [
            {"type": "text", "text": "a fox in snow"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}, "role": "first_frame"},
        ],
        "ratio": "9:16",
        "resolution": "480p",
        "duration": 3,
    }
    response = api.create(body)
    assert response.status_code == 200, response.text
    task = api.task(response.json()["data"]["task_id"])
    assert (task["request"]["width"], task["request"]["height"]) == (480, 864)
    assert task["prompt"] == "a fox in snow"


def test_get_renders_each_state_in_envelope_words(api: Any) -> None:
    # Markers pin each task in one state, so the check does not race the clock on a busy machine.
    queued, running, done = (
        api.new_task(f"{STAY_QUEUED} q"),
        api.new_task(f"{STAY_RUNNING} r"),
        api.new_task(f"{DONE_NOW} d"),
    )
    first = api.get(queued).json()
    assert first["code"] == 0 and first["message"] == "Success"
    data = first["data"]
    assert data["status"] == "pending" and data["task_id"] == queued
    assert data["model"] == "seedance-1-0-lite-t2v" and ISO_RE.fullmatch(data["created_at"])
    assert "video_url" not in data and "completed_at" not in data and "error" not in data
    api.wait_status(running, "running")
    assert api.get(running).json()["data"]["status"] == "processing"
    api.wait_status(done, "succeeded")
    finished = api.get(done).json()["data"]
    assert finished["status"] == "completed"
    assert ISO_RE.fullmatch(finished["completed_at"])
    assert "/_emulator/videos/" in finished["video_url"] and "error" not in finished


def test_a_task_moves_through_queued_running_succeeded_on_the_cli_timings(api: Any) -> None:
    task_id = api.new_task("a cat")  # the fixture runs with queue 0.2 s, run 0.5 s
    task = api.task(task_id)
    assert (task["queue_seconds"], task["run_seconds"]) == (0.2, 0.5)
    # Each read is checked against the phase its whole request window falls in (seconds since the
    # emulator created the task), so a slow request on a busy machine cannot make the test flaky.
    queue, done = task["queue_seconds"], task["queue_seconds"] + task["run_seconds"]
    phases = [("queued", 0.0, queue), ("running", queue, done), ("succeeded", done, float("inf"))]
    seen: list[str] = []
    checked: set[str] = set()
    while not seen or seen[-1] != "succeeded":
        before = time.time() - task["created_at"]
        status = api.task(task_id)["status"]
        after = time.time() - task["created_at"]
        seen.append(status)
        for phase, begins, ends in phases:
            if begins + 0.02 < before and after < ends - 0.02:  # 20 ms of slack for the clock
                assert status == phase, f"{status} read {before:.3f}-{after:.3f} s after create"
                checked.add(phase)
        time.sleep(0.02)
    assert after >= done - 0.02
    assert seen == sorted(seen, key=["queued", "running", "succeeded"].index), seen
    assert checked, seen  # at least one read fell wholly inside a phase (all do, unless reads take 0.2 s)


def test_scripted_failure_expiry_and_random_seed(api: Any) -> None:
    failed = api.new_task(f"{DONE_NOW} [[fail:policy]] bad")
    expired = api.new_task(f"{DONE_NOW} [[expire]] slow")
    random_seed = api.new_task(f"{DONE_NOW} any", seed=-1)
    assert api.wait_status(failed, "failed")["outcome"] == "failed"
    error = api.get(failed).json()["data"]["error"]
    assert "Content policy" in error and "OutputVideoSensitiveContentDetected" in error
    assert api.get(expired).json()["data"]["status"] == "expired"
    assert 1 <= api.task(random_seed)["seed"] <= 2147483647


@pytest.mark.parametrize(
    ("marker", "status", "shape"),
    [("[[reject:policy]]", 400, "gptproto"), ("[[reject:policy503]]", 503, "signature")],
)
def test_reject_marker_refuses_the_create_call(
    api: Any, emu: Any, marker: str, status: int, shape: str
) -> None:
    response = api.create(prompt=f"{marker} something")
    assert response.status_code == status
    error = response.json()["error"]
    if shape == "gptproto":
        assert error == {
            "message": error["message"],
            "type": "invalid_request_error",
            "code": "content_policy_violation",
        }
    else:
        assert error == {"message": error["message"], "type": "503"}
    assert "Content policy violation" in error["message"]
    assert emu.stats()["tasks_created"] == 0


def test_list_filters_pages_and_sorts_newest_first(api: Any) -> None:
    ids = [api.new_task(f"{STAY_QUEUED} q{i}") for i in range(3)]
    other = api.new_task(f"{DONE_NOW} done", model="other-model")
    api.wait_status(other, "succeeded")
    everything = api.list().json()
    assert everything["total"] == 4 and [item["id"] for item in everything["items"]] == [other, *ids[::-1]]
    item = everything["items"][0]
    assert item["status"] == "succeeded" and "video_url" in item["content"]  # list items are shape B
    assert isinstance(item["created_at"], int) and item["error"] is None

    queued = api.list({"filter.status": "queued"}).json()
    assert queued["total"] == 3 and {i["id"] for i in queued["items"]} == set(ids)
    picked = api.list([("filter.task_ids", ids[0]), ("filter.task_ids", other)]).json()
    assert {i["id"] for i in picked["items"]} == {ids[0], other}
    assert api.list({"filter.model": "other-model"}).json()["total"] == 1
    page = api.list({"page_num": 2, "page_size": 3}).json()
    assert page["total"] == 4 and [i["id"] for i in page["items"]] == [ids[0]]
    assert api.list({"filter.status": "RUNNING"}).json() == {"items": [], "total": 0}


def test_delete_queued_task_cancels_it(api: Any) -> None:
    task_id = api.new_task(f"{STAY_QUEUED} cancel me")
    response = api.delete(task_id)
    assert response.status_code == 200 and response.json() == {}
    assert api.task(task_id)["status"] == "cancelled"
    assert api.get(task_id).json()["data"]["status"] == "cancelled"
    again = api.delete(task_id)  # already cancelled: refused
    assert again.status_code == 400
    assert (
        again.json()["error"]["code"] == "invalid_parameters"
        and "cancelled" in again.json()["error"]["message"]
    )


def test_delete_running_task_is_refused(api: Any) -> None:
    task_id = api.new_task(f"{STAY_RUNNING} busy")
    api.wait_status(task_id, "running")
    response = api.delete(task_id)
    assert response.status_code == 400 and "running" in response.json()["error"]["message"]
    assert api.task(task_id)["status"] == "running"


@pytest.mark.parametrize("marker", ["", "[[fail:policy]]", "[[expire]]"])
def test_delete_terminal_task_deletes_the_record(api: Any, marker: str) -> None:
    task_id = api.new_task(f"{DONE_NOW} {marker} finished")
    api.wait_status(task_id, {"": "succeeded", "[[fail:policy]]": "failed", "[[expire]]": "expired"}[marker])
    response = api.delete(task_id)
    assert response.status_code == 200 and response.json() == {}
    gone = api.get(task_id)
    assert gone.status_code == 404
    assert gone.json() == {
        "error": {
            "message": gone.json()["error"]["message"],
            "type": "invalid_request_error",
            "code": "not_found",
        }
    }
    assert api.delete(task_id).status_code == 404


def test_unknown_and_malformed_task_ids(api: Any) -> None:
    missing = api.get("task_doesnotexist")
    assert missing.status_code == 404 and "task_doesnotexist" in missing.json()["error"]["message"]
    malformed = api.get("bad%20id!")
    assert malformed.status_code == 400
    assert malformed.json()["error"] == {
        "message": "Invalid task_id format",
        "type": "invalid_request_error",
        "code": "invalid_parameters",
    }


def test_ark_dialect_errors_use_the_upstream_shape(api: Any, emu: Any) -> None:
    emu.configure(dialect="ark")
    missing = api.get("cgt-nope")
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert set(error) == {"code", "message", "param", "type"}
    assert (
        error["code"] == "ResourceNotFound"
        and error["type"] == "NotFound"
        and "Request id:" in error["message"]
    )
    task_id = api.new_task(f"{STAY_RUNNING} busy")
    api.wait_status(task_id, "running")
    refused = api.delete(task_id).json()["error"]
    assert refused["code"] == "InvalidParameter" and refused["type"] == "BadRequest"


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("Bearer emulator-test-key", 200),
        ("bearer emulator-test-key", 200),
        ("emulator-test-key", 200),
        ("Bearer wrong", 401),
        ("wrong", 401),
        ("", 401),
        (None, 401),
        ("Bearer ", 401),
    ],
)
def test_auth_accepts_bearer_and_bare_key(api: Any, header: str | None, status: int) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = api.create(headers=headers)
    assert response.status_code == status
    if status == 401:
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key"
        assert set(error) == {"message", "type", "code"}
    expected_get, expected_list = (401, 401) if status == 401 else (404, 200)
    assert api.get("task_x", headers=headers).status_code == expected_get
    assert api.session.get(api.base + TASKS, headers=headers).status_code == expected_list


def test_auth_error_in_ark_shape(api: Any, emu: Any) -> None:
    emu.configure(dialect="ark")
    error = api.create(headers={"Authorization": "Bearer nope"}).json()["error"]
    assert error["code"] == "AuthenticationError" and error["type"] == "Unauthorized" and error["param"] == ""


def test_without_configured_key_any_non_empty_key_is_accepted(
    gptproto_emulator_factory: Any, make_api: Any
) -> None:
    emulator = gptproto_emulator_factory(api_key=None)
    api = make_api(emulator)
    assert api.create(headers={"Authorization": "Bearer anything"}).status_code == 200
    assert api.create(headers={"Authorization": "whatever"}).status_code == 200
    assert api.create(headers={}).status_code == 401


def test_predictions_result_route_and_unknown_routes(api: Any) -> None:
    task_id = api.new_task(f"{DONE_NOW} x")
    api.wait_status(task_id, "succeeded")
    result = api.session.get(f"{api.base}/api/v3/predictions/{task_id}/result", headers=api.headers).json()
    assert result["code"] == 200 and result["data"]["status"] == "completed"
    unknown = api.session.get(api.base + "/api/v3/nothing", headers=api.headers)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def test_requests_work_over_keep_alive_connections(api: Any) -> None:
    session = requests.Session()
    for _ in range(5):
        response = session.post(
            api.base + TASKS, headers=api.headers, json={"model": "m", "prompt": "p"}, timeout=5
        )
        assert response.status_code == 200


def _without_request_id(response: requests.Response) -> tuple[int, str, Any]:
    """Status, content type and body of an error reply, minus the per-request id in Ark messages."""
    body = response.json()
    error = body.get("error", {})
    if "message" in error:
        error["message"] = re.sub(r"Request id: \w+", "Request id: <id>", error["message"])
    return response.status_code, response.headers["content-type"], body


def test_no_list_endpoint_answers_like_an_unknown_route(
    gptproto_emulator_factory: Any, make_api: Any
) -> None:
    emulator = gptproto_emulator_factory(no_list_endpoint=True)
    api = make_api(emulator)
    task_id = api.new_task(DONE_NOW)
    for dialect in ("envelope", "ark"):
        emulator.configure(dialect=dialect)
        listed = api.list({"filter.task_ids": task_id})
        unknown = api.session.get(
            api.base + "/api/v3/contents/no-such-route", headers=api.headers, timeout=10
        )
        assert listed.status_code == 404
        assert _without_request_id(listed) == _without_request_id(unknown)
        # Without a key too: an unknown route does not ask for one, so the missing list does not either.
        bare = api.session.get(api.base + TASKS, timeout=10)
        assert _without_request_id(bare) == _without_request_id(unknown)
    # Everything else is still served.
    assert api.get(task_id).status_code == 200
    assert api.delete(task_id).status_code == 200


def test_advance_moves_tasks_through_their_phases_on_command(api: Any, emu: Any) -> None:
    slow = "[[queue:600]] [[run:600]]"
    first, second, third = (api.new_task(f"{slow} {n}") for n in ("one", "two", "three"))
    created_at = api.task(first)["created_at"]
    assert emu.advance(first) == [{"id": first, "from": "queued", "to": "running"}]
    assert api.get(first).json()["data"]["status"] == "processing"
    assert emu.advance(first) == [{"id": first, "from": "running", "to": "succeeded"}]
    assert api.get(first).json()["data"]["status"] == "completed"
    assert api.task(first)["created_at"] == created_at  # the phases are cut short, history stays true
    assert emu.advance(first) == []  # a finished task has no next phase
    # No ids: every unfinished task; to_end: straight to the outcome.
    moved = emu.advance(to_end=True)
    assert sorted((m["id"], m["from"], m["to"]) for m in moved) == sorted(
        [(second, "queued", "succeeded"), (third, "queued", "succeeded")]
    )
    failing = api.new_task(f"{slow} [[fail:policy]] bad")
    assert emu.advance(failing, to_end=True) == [{"id": failing, "from": "queued", "to": "failed"}]


def test_advance_refuses_unknown_tasks_and_bad_bodies(api: Any, emu: Any) -> None:
    url = emu.url + "/_emulator/advance"
    assert requests.post(url, json={"task_ids": ["task_missing"]}, timeout=10).status_code == 404
    bad = requests.post(url, json={"to": "later"}, timeout=10)
    assert bad.status_code == 400 and "to: must be one of next, end" in bad.text
    assert requests.post(url, json={"task_ids": "x"}, timeout=10).status_code == 400
    assert requests.post(url, json={"ids": []}, timeout=10).status_code == 400
