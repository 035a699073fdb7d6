"""Every fault action, the rule filters, and the admin endpoints that manage rules."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
import requests

from airflow_provider_gptproto.emulator.harness import EmulatorError

DONE_NOW = "[[queue:0]] [[run:0]]"


def test_status_fault_in_each_body_shape(api: Any, emu: Any) -> None:
    emu.add_fault(endpoint="create", action="status", status=500, count=1)
    response = api.create()
    assert response.status_code == 500
    assert response.json() == {
        "error": {"message": "Internal server error", "type": "server_error", "code": "internal_error"}
    }
    emu.add_fault(
        endpoint="create",
        action="status",
        status=401,
        body_shape="signature",
        message="Invalid signature",
        count=1,
    )
    assert api.create().json() == {"error": {"message": "Invalid signature", "type": "401"}}
    emu.add_fault(endpoint="create", action="status", status=503, body_shape="ark", count=1)
    error = api.create().json()["error"]
    assert (
        error["code"] == "ServerOverloaded" and error["type"] == "ServiceUnavailable" and error["param"] == ""
    )
    emu.add_fault(
        endpoint="create",
        action="status",
        status=403,
        message="Insufficient balance",
        code="insufficient_permissions",
        error_type="permission_error",
        count=1,
    )
    assert api.create().json()["error"] == {
        "message": "Insufficient balance",
        "type": "permission_error",
        "code": "insufficient_permissions",
    }
    emu.add_fault(endpoint="create", action="status", status=500, body_shape="empty", count=1)
    assert api.create().content == b""
    emu.add_fault(endpoint="create", action="status", status=500, body_shape="text", count=1)
    assert api.create().text == "Internal server error"
    assert api.create().status_code == 200  # counts used up
    assert emu.stats()["tasks_created"] == 1  # error replies never created a task


def test_auto_body_shape_follows_the_dialect(api: Any, emu: Any) -> None:
    emu.configure(dialect="ark")
    emu.add_fault(endpoint="get", action="status", status=500)
    error = api.get("cgt-x").json()["error"]
    assert error["code"] == "InternalServiceError" and "Request id:" in error["message"]


def test_rate_limit_with_and_without_retry_after(api: Any, emu: Any) -> None:
    emu.add_fault(endpoint="create", action="rate_limit", retry_after=2, count=1)
    emu.add_fault(endpoint="create", action="rate_limit", count=1)
    first, second = api.create(), api.create()
    assert first.status_code == 429 and first.headers["retry-after"] == "2"
    assert first.json()["error"] == {
        "message": "Rate limit exceeded",
        "type": "rate_limit_error",
        "code": "rate_limit_exceeded",
    }
    assert second.status_code == 429 and "retry-after" not in second.headers
    emu.configure(dialect="ark")
    emu.add_fault(endpoint="list", action="rate_limit", retry_after="0.5")
    limited = api.list()
    assert limited.headers["retry-after"] == "0.5"
    assert limited.json()["error"]["code"] == "RateLimitExceeded.EndpointRPMExceeded"


def test_latency(api: Any, emu: Any) -> None:
    emu.add_fault(endpoint="list", action="latency", latency_seconds=0.4)
    start = time.monotonic()
    assert api.list().status_code == 200
    assert time.monotonic() - start >= 0.4
    emu.clear_faults()
    emu.add_fault(endpoint="list", action="status", status=502, latency_seconds=0.3)
    start = time.monotonic()
    assert api.list().status_code == 502 and time.monotonic() - start >= 0.3


def test_drop_before_creates_nothing(api: Any, emu: Any) -> None:
    emu.add_fault(endpoint="create", action="drop_before", count=1)
    with pytest.raises(requests.ConnectionError):
        api.create()
    stats = emu.stats()
    assert stats["tasks_created"] == 0 and stats["status_counts"]["create"] == {"dropped": 1}
    assert emu.tasks() == []
    assert api.create().status_code == 200  # the next one goes through (fresh connection)


def test_drop_after_creates_the_task_but_loses_the_reply(api: Any, emu: Any) -> None:
    emu.add_fault(endpoint="create", action="drop_after", count=1)
    with pytest.raises(requests.ConnectionError):
        api.create(prompt="lost reply")
    stats = emu.stats()
    assert stats["tasks_created"] == 1 and stats["status_counts"]["create"] == {"dropped": 1}
    [task] = emu.tasks()
    assert task["prompt"] == "lost reply"
    log = emu.requests_log(endpoint="create")
    assert log[-1]["outcome"] == "dropped" and log[-1]["task_id"] == task["id"]


def test_drop_on_get_and_delete(api: Any, emu: Any) -> None:
    task_id = api.new_task("[[queue:60]] x")
    emu.add_fault(endpoint=["get", "delete"], action="drop_before")
    with pytest.raises(requests.ConnectionError):
        api.get(task_id)
    with pytest.raises(requests.ConnectionError):
        api.delete(task_id)
    assert api.task(task_id)["status"] == "queued"  # drop_before: the delete never happened
    emu.clear_faults()
    emu.add_fault(endpoint="delete", action="drop_after")
    with pytest.raises(requests.ConnectionError):
        api.delete(task_id)
    assert api.task(task_id)["status"] == "cancelled"  # drop_after: it did


def test_malformed_json(api: Any, emu: Any) -> None:
    emu.add_fault(endpoint="get", action="malformed_json")
    response = api.get("task_x")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(response.text)


def test_html_error_page(api: Any, emu: Any) -> None:
    emu.add_fault(endpoint="create", action="html", count=1)
    response = api.create()
    assert response.status_code == 502 and response.headers["content-type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in response.text
    emu.add_fault(endpoint="create", action="html", status=200, count=1)
    assert api.create().status_code == 200
    assert emu.stats()["tasks_created"] == 0


def test_process_flag_creates_the_task_then_sends_the_error(api: Any, emu: Any) -> None:
    emu.add_fault(endpoint="create", action="status", status=500, process=True, count=1)
    assert api.create().status_code == 500
    assert emu.stats()["tasks_created"] == 1


def test_truncated_video_and_truncated_json(api: Any, emu: Any) -> None:
    task_id = api.new_task(f"{DONE_NOW} cut", duration=2)
    url = api.video_url(task_id)
    size = len(requests.get(url, timeout=10).content)
    emu.add_fault(endpoint="video", action="truncate", count=1)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        requests.get(url, timeout=10).content  # noqa: B018 - reading the body is the point
    emu.add_fault(endpoint="video", action="truncate", truncate_bytes=1000, count=1)
    received = bytearray()
    broken = (requests.exceptions.ChunkedEncodingError, requests.ConnectionError)
    with pytest.raises(broken), requests.get(url, stream=True, timeout=10) as response:
        assert int(response.headers["content-length"]) == size
        for chunk in response.iter_content(100):
            received += chunk
    assert len(received) == 1000
    assert len(requests.get(url, timeout=10).content) == size  # rules used up: whole file again
    emu.add_fault(endpoint="get", action="truncate", count=1)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        api.get(task_id)
    log = emu.requests_log()
    assert [e["outcome"] for e in log if e["fault"] == "truncate"] == ["truncated"] * 3


def test_wrong_content_type(api: Any, emu: Any) -> None:
    emu.add_fault(endpoint="create", action="wrong_content_type", count=1)
    response = api.create()
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.json()["data"]["status"] == "pending"
    url = api.video_url(api.new_task(f"{DONE_NOW} ct", duration=2))
    emu.add_fault(endpoint="video", action="wrong_content_type", content_type="application/octet-stream")
    assert requests.get(url, timeout=10).headers["content-type"] == "application/octet-stream"


def test_unknown_status(api: Any, emu: Any) -> None:
    task_id = api.new_task()
    emu.add_fault(endpoint=["get", "list"], action="unknown_status")
    assert api.get(task_id).json()["data"]["status"] == "mystery_state"
    assert api.list().json()["items"][0]["status"] == "mystery_state"
    emu.clear_faults()
    emu.configure(dialect="ark")
    emu.add_fault(endpoint="get", action="unknown_status", status_word="PAUSED")
    assert api.get(task_id).json()["status"] == "PAUSED"


def test_missing_id(api: Any, emu: Any) -> None:
    emu.add_fault(endpoint="create", action="missing_id", count=1)
    response = api.create()
    assert response.status_code == 200
    assert response.json() == {"code": 0, "message": "Success", "data": {"status": "pending"}}
    assert emu.stats()["tasks_created"] == 1
    emu.configure(dialect="ark")
    emu.add_fault(endpoint="create", action="missing_id", count=1)
    assert api.create().json() == {}


def test_count_skip_and_probability(api: Any, emu: Any) -> None:
    emu.add_fault(endpoint="create", action="status", status=500, count=3)
    assert [api.create().status_code for _ in range(5)] == [500, 500, 500, 200, 200]
    rule = emu.faults()[0]
    assert rule["remaining"] == 0 and rule["applied"] == 3
    emu.clear_faults()
    emu.add_fault(endpoint="create", action="status", status=503, skip=2, count=1)
    assert [api.create().status_code for _ in range(4)] == [200, 200, 503, 200]
    emu.clear_faults()
    emu.add_fault(endpoint="list", action="status", status=500, probability=0)
    assert all(api.list().status_code == 200 for _ in range(10))
    emu.clear_faults()
    emu.add_fault(endpoint="list", action="status", status=500, probability=0.5)
    codes = [api.list().status_code for _ in range(60)]
    assert 5 < codes.count(500) < 55


def test_prompt_contains_matches_create_and_later_calls_on_that_task(api: Any, emu: Any) -> None:
    emu.add_fault(endpoint="create", action="status", status=400, prompt_contains="FORBIDDEN")
    assert api.create(prompt="fine").status_code == 200
    assert api.create(prompt="this is forbidden text").status_code == 400
    assert (
        api.create({"model": "m", "content": [{"type": "text", "text": "Forbidden too"}]}).status_code == 400
    )
    emu.clear_faults()
    flaky = api.new_task("flaky one")
    steady = api.new_task("steady one")
    emu.add_fault(endpoint="get", action="status", status=500, prompt_contains="flaky")
    assert api.get(flaky).status_code == 500 and api.get(steady).status_code == 200


def test_task_id_filter_and_wildcard_endpoint(api: Any, emu: Any) -> None:
    first, second = api.new_task(), api.new_task()
    emu.add_fault(action="status", status=500, task_id=first)
    assert api.get(first).status_code == 500 and api.get(second).status_code == 200
    emu.clear_faults()
    emu.add_fault(endpoint="*", action="status", status=418)
    assert {api.create().status_code, api.get(first).status_code, api.list().status_code} == {418}
    assert emu.health()["status"] == "ok"  # admin endpoints are never faulted


def test_fault_rules_admin_endpoints(emu: Any) -> None:
    rule = emu.add_fault(endpoint="create", action="rate_limit", retry_after=1)
    assert rule["id"] == "fault-1" and rule["status"] == 429 and rule["remaining"] is None
    batch = requests.post(
        emu.url + "/_emulator/faults",
        timeout=5,
        json=[{"action": "latency", "latency_seconds": 0.1}, {"action": "html"}],
    ).json()
    assert [r["id"] for r in batch["rules"]] == ["fault-2", "fault-3"]
    assert [r["id"] for r in emu.faults()] == ["fault-1", "fault-2", "fault-3"]
    emu.remove_fault("fault-2")
    assert [r["id"] for r in emu.faults()] == ["fault-1", "fault-3"]
    with pytest.raises(EmulatorError, match="404"):
        emu.remove_fault("fault-2")
    assert emu.clear_faults() == 2 and emu.faults() == []
    for bad in (
        {"action": "explode"},
        {"action": "status", "status": 700},
        {"action": "latency"},
        {"action": "status", "probability": 2},
        {"action": "status", "endpoint": "upload"},
        {"action": "status", "body_shape": "yaml"},
        {"action": "status", "colour": "red"},
    ):
        with pytest.raises(EmulatorError, match="400"):
            emu.add_fault(**bad)
    mixed = requests.post(
        emu.url + "/_emulator/faults", json=[{"action": "html"}, {"action": "nope"}], timeout=5
    )
    assert mixed.status_code == 400 and emu.faults() == []  # a bad batch adds nothing


def test_reset_clears_rules(api: Any, emu: Any) -> None:
    emu.add_fault(endpoint="create", action="status", status=500)
    emu.reset()
    assert emu.faults() == [] and api.create().status_code == 200


def test_faults_preloaded_from_the_cli(gptproto_emulator_factory: Any, make_api: Any) -> None:
    emulator = gptproto_emulator_factory(
        faults=[{"endpoint": "create", "action": "status", "status": 503, "count": 1}],
        extra_args=[
            "--fault",
            json.dumps([{"endpoint": "list", "action": "rate_limit", "retry_after": 3}]),
            "--fault-seed",
            "7",
        ],
    )
    api = make_api(emulator)
    assert [api.create().status_code, api.create().status_code] == [503, 200]
    assert api.list().headers["retry-after"] == "3"
    assert len(emulator.faults()) == 2


def test_invalid_cli_fault_is_rejected_at_startup() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_provider_gptproto.emulator",
            "--port",
            "0",
            "--fault",
            '{"action": "boom"}',
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "invalid --fault rule" in result.stderr and result.stdout == ""
