"""GPTProtoTaskTrigger against the emulator: one event per run, transient faults ridden out."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import requests

from airflow_provider_gptproto.emulator.harness import wait_for
from airflow_provider_gptproto.hooks import _aiosession
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.triggers.gptproto import GPTProtoTaskTrigger, parse_event
from tests.support.supervisor_comms import FakeComms, supervisor_comms, task_instance


def _create(prompt: str = "a trigger test") -> str:
    return GPTProtoHook().create_task({"prompt": prompt}).task_id


async def _events(trigger: GPTProtoTaskTrigger) -> list[dict[str, Any]]:
    events = []
    async for event in trigger.run():
        events.append(event.payload)
    return events


def test_serialize_round_trips_json_safe_kwargs() -> None:
    trigger = GPTProtoTaskTrigger("task_1", "my_conn", poll_interval=3, deadline=1900000000.5)
    classpath, kwargs = trigger.serialize()

    assert classpath == "airflow_provider_gptproto.triggers.gptproto.GPTProtoTaskTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert GPTProtoTaskTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert not any("key" in name or "password" in name for name in kwargs)


def test_success_yields_exactly_one_event_with_the_task(emulator: Any) -> None:
    task_id = _create()
    events = asyncio.run(_events(GPTProtoTaskTrigger(task_id, poll_interval=0.1, deadline=time.time() + 30)))

    assert len(events) == 1
    assert events[0]["status"] == "success"
    assert events[0]["task"]["task_id"] == task_id
    assert events[0]["task"]["video_url"].startswith(emulator.url)
    assert _aiosession.open_sessions() == 0  # released at the end of run()


def test_success_event_carries_the_video_size_measured_without_the_key(emulator: Any) -> None:
    task_id = _create("a sized video")
    (event,) = asyncio.run(
        _events(GPTProtoTaskTrigger(task_id, poll_interval=0.1, deadline=time.time() + 30))
    )

    body = requests.get(event["task"]["video_url"], timeout=30).content
    assert event["video_bytes"] == len(body) > 0
    heads = [r for r in emulator.requests_log(endpoint="video") if r["method"] == "HEAD"]
    assert heads and not any(r["auth_present"] for r in heads)  # the video host never sees the key
    assert parse_event(event).video_size(event["task"]["video_url"]) == len(body)


def test_failed_event_carries_no_size(emulator: Any) -> None:
    (event,) = asyncio.run(
        _events(GPTProtoTaskTrigger(_create("[[fail:policy]]"), poll_interval=0.1, deadline=time.time() + 30))
    )
    assert event["status"] == "failed" and event["video_bytes"] is None


@pytest.mark.parametrize("size", [-1, "12", True, 1.5])
def test_parse_event_ignores_a_malformed_size(size: Any) -> None:
    outcome = parse_event({"status": "success", "task": None, "message": "", "video_bytes": size})
    assert outcome.video_bytes is None


@pytest.mark.parametrize(
    ("marker", "status", "code_hint"),
    [("[[fail:policy]]", "failed", "sensitive"), ("[[expire]]", "expired", None)],
)
def test_failed_and_expired_tasks_end_with_a_failed_event(
    emulator: Any, marker: str, status: str, code_hint: str | None
) -> None:
    task_id = _create(f"scripted {marker}")
    events = asyncio.run(_events(GPTProtoTaskTrigger(task_id, poll_interval=0.1, deadline=time.time() + 30)))

    assert [e["status"] for e in events] == ["failed"]
    assert events[0]["task"]["status"] == status
    if code_hint:
        error = f"{events[0]['task']['error_code']} {events[0]['task']['error_message']}".lower()
        assert code_hint in error or "policy" in error


def test_deadline_yields_timeout_with_the_last_status(emulator: Any) -> None:
    emulator.configure(queue_seconds=60)
    task_id = _create()
    events = asyncio.run(_events(GPTProtoTaskTrigger(task_id, poll_interval=0.1, deadline=time.time() + 0.6)))

    assert [e["status"] for e in events] == ["timeout"]
    assert events[0]["task"]["status"] == "pending"


def test_transient_faults_keep_polling(emulator: Any) -> None:
    task_id = _create()
    emulator.add_fault(endpoint="get", action="status", status=500, count=2)
    emulator.add_fault(endpoint="get", action="rate_limit", retry_after=0.1, count=1)
    emulator.add_fault(endpoint="get", action="drop_before", count=1)
    emulator.add_fault(endpoint="get", action="malformed_json", count=1)
    emulator.add_fault(endpoint="get", action="html", count=1)

    trigger = GPTProtoTaskTrigger(task_id, poll_interval=0.05, deadline=time.time() + 60)
    events = asyncio.run(_events(trigger))

    assert [e["status"] for e in events] == ["success"]
    assert emulator.stats()["tasks_created"] == 1
    assert emulator.stats()["requests"]["get"] >= 7  # every fault was hit, then polling went on


def test_unknown_task_and_bad_key_end_with_an_error_event(emulator: Any, monkeypatch: Any) -> None:
    events = asyncio.run(
        _events(GPTProtoTaskTrigger("no-such-task", poll_interval=0.1, deadline=time.time() + 30))
    )
    assert [e["status"] for e in events] == ["error"]
    assert "404" in events[0]["message"]

    task_id = _create()
    conn = {"conn_type": "gptproto", "host": emulator.url, "password": "wrong-key-0123456789"}
    monkeypatch.setenv("AIRFLOW_CONN_GPTPROTO_DEFAULT", json.dumps(conn))
    events = asyncio.run(_events(GPTProtoTaskTrigger(task_id, poll_interval=0.1, deadline=time.time() + 30)))
    assert [e["status"] for e in events] == ["error"]
    assert "wrong-key-0123456789" not in json.dumps(events)


def test_many_triggers_share_one_http_session(emulator: Any) -> None:
    task_ids = [_create(f"video {i}") for i in range(20)]
    seen_sessions: list[int] = []

    async def main() -> list[list[dict[str, Any]]]:
        triggers = [GPTProtoTaskTrigger(t, poll_interval=0.1, deadline=time.time() + 60) for t in task_ids]
        runs = [asyncio.ensure_future(_events(t)) for t in triggers]
        while not all(r.done() for r in runs):
            seen_sessions.append(_aiosession.open_sessions())
            await asyncio.sleep(0.05)
        return [r.result() for r in runs]

    results = asyncio.run(main())

    assert all([e["status"] for e in events] == ["success"] for events in results)
    assert max(seen_sessions) == 1
    assert _aiosession.open_sessions() == 0


@pytest.mark.parametrize(
    "state, cancel_on_kill, remote_status",
    [
        ("failed", True, "cancelled"),  # a user marked it failed (or success, or cleared it)
        ("deferred", True, "queued"),  # the wait moved to another triggerer (apache/airflow#73454)
        ("failed", False, "queued"),  # the operator asked never to cancel
    ],
)
def test_on_kill_cancels_only_what_a_user_stopped(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, state: str, cancel_on_kill: bool, remote_status: str
) -> None:
    emulator.configure(queue_seconds=60)
    task_id = _create()

    async def main() -> None:
        trigger = GPTProtoTaskTrigger(
            task_id, poll_interval=0.1, deadline=time.time() + 60, cancel_on_kill=cancel_on_kill
        )
        trigger.task_instance = task_instance()
        run = asyncio.ensure_future(_events(trigger))
        # The wait is under way (the emulator answered a poll), then it is stopped.
        await asyncio.to_thread(wait_for, lambda: emulator.requests_log("get"), 30, what="the first poll")
        run.cancel()
        await trigger.on_kill()
        await trigger.cleanup()

    # Airflow's answer to "what state is this task in" is stubbed; the HTTP side is the real emulator.
    with supervisor_comms(monkeypatch, FakeComms(state=state)):
        asyncio.run(main())

    assert [t["status"] for t in emulator.tasks()] == [remote_status]
    assert len(emulator.requests_log(endpoint="delete")) == (remote_status == "cancelled")
