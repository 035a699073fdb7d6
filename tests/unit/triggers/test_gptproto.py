"""GPTProtoTaskTrigger.run with a mocked hook and a fake clock: one event, whatever happens.

The clock only moves when the trigger sleeps, so deadlines and backoff are exact and nothing waits.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_gptproto.exceptions import (
    GPTProtoAuthError,
    GPTProtoBadRequestError,
    GPTProtoConnectionError,
    GPTProtoError,
    GPTProtoNotFoundError,
    GPTProtoRateLimitError,
    GPTProtoResponseError,
    GPTProtoServerError,
)
from airflow_provider_gptproto.models.poll import MAX_POLL_BACKOFF_SECONDS, TRIGGER_POLL_JITTER
from airflow_provider_gptproto.triggers import base as base_module
from airflow_provider_gptproto.triggers import gptproto as trigger_module
from airflow_provider_gptproto.triggers.gptproto import GPTProtoTaskTrigger, parse_event
from tests.unit.fakes import CLOCK_START as START
from tests.unit.fakes import VIDEO_URL, FakeClock, HookFactory, patch_hook, task


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fake clock, and no jitter so that pauses are exact (test_pauses_are_spread_... keeps it)."""
    fake = FakeClock()
    monkeypatch.setattr(trigger_module, "time", fake)
    monkeypatch.setattr(asyncio, "sleep", fake.aadvance)
    monkeypatch.setattr(trigger_module, "TRIGGER_POLL_JITTER", 0.0)
    return fake


@pytest.fixture
def factory(monkeypatch: pytest.MonkeyPatch) -> HookFactory:
    return patch_hook(monkeypatch, base_module)  # the triggers' hook is built in triggers.base


async def run(trigger: GPTProtoTaskTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def make_trigger(**kwargs: Any) -> GPTProtoTaskTrigger:
    params: dict[str, Any] = {"gptproto_task_id": "task-1", "gptproto_conn_id": "gptproto_unit"}
    params.update(kwargs)
    return GPTProtoTaskTrigger(**params)


async def test_polls_until_success_and_measures_the_video(factory: HookFactory, clock: FakeClock) -> None:
    hook = factory.hook
    finished = task("task-1", "succeeded")
    hook.aget_task.side_effect = [task("task-1", "pending"), task("task-1", "running"), finished]

    events = await run(make_trigger(poll_interval=10, deadline=START + 3600))

    assert events == [
        {
            "status": "success",
            "task_id": "task-1",
            "task": finished.to_dict(),
            "message": "GPTProto task task-1 has succeeded",
            "video_bytes": 2 * 1_048_576,
        }
    ]
    assert clock.sleeps == [10.0, 10.0]
    hook.avideo_size.assert_awaited_once_with(VIDEO_URL)
    hook.aclose.assert_awaited_once_with()  # the shared session is released
    # one attempt per poll: the loop owns the backoff
    assert factory.calls == [(("gptproto_unit",), {"retry_limit": 1})]


async def test_pauses_are_spread_around_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    # Thousands of waits that a loop stall brought in step must drift apart again. Not the clock
    # fixture: this one keeps the real jitter.
    clock = FakeClock()
    monkeypatch.setattr(trigger_module, "time", clock)
    monkeypatch.setattr(asyncio, "sleep", clock.aadvance)
    factory = patch_hook(monkeypatch, base_module)
    factory.hook.aget_task.side_effect = [*[task("task-1", "running")] * 200, task("task-1", "succeeded")]

    events = await run(make_trigger(poll_interval=10))

    assert [e["status"] for e in events] == ["success"]
    low, high = 10 * (1 - TRIGGER_POLL_JITTER), 10 * (1 + TRIGGER_POLL_JITTER)
    assert len(clock.sleeps) == 200 and all(low <= s <= high for s in clock.sleeps)
    assert min(clock.sleeps) < 9.5 and max(clock.sleeps) > 10.5


@pytest.mark.parametrize("status", ["failed", "expired", "cancelled"])
async def test_a_task_that_ends_without_video_is_a_failed_event(
    factory: HookFactory, clock: FakeClock, status: str
) -> None:
    # Even a leftover URL on an unsuccessful task is not measured: there is no video to deliver.
    ended = task("task-1", status, error_code="InternalError", video_url=VIDEO_URL)
    factory.hook.aget_task.return_value = ended

    events = await run(make_trigger())

    assert [(e["status"], e["task"], e["video_bytes"]) for e in events] == [("failed", ended.to_dict(), None)]
    factory.hook.avideo_size.assert_not_awaited()
    assert clock.sleeps == []


async def test_the_deadline_ends_the_wait_with_the_last_status(
    factory: HookFactory, clock: FakeClock
) -> None:
    factory.hook.aget_task.return_value = task("task-1", "running")

    events = await run(make_trigger(poll_interval=10, deadline=START + 25))

    assert len(events) == 1
    assert events[0]["status"] == "timeout"
    assert events[0]["task"]["status"] == "running"
    assert "deadline" in events[0]["message"]
    assert clock.sleeps == [10.0, 10.0, 5.0]  # the last sleep is cut to the deadline
    assert factory.hook.aget_task.await_count == 3
    factory.hook.aclose.assert_awaited_once_with()


async def test_a_deadline_already_past_checks_once_then_times_out(
    factory: HookFactory, clock: FakeClock
) -> None:
    # A triggerer restart re-runs the trigger from its kwargs: the absolute deadline still holds.
    factory.hook.aget_task.return_value = task("task-1", "running")

    events = await run(make_trigger(deadline=START - 1))

    assert [(e["status"], e["task"]["status"]) for e in events] == [("timeout", "running")]
    assert "did not finish by its deadline (still running" in events[0]["message"]
    factory.hook.aget_task.assert_awaited_once_with("task-1")
    assert clock.sleeps == []


async def test_a_task_that_finished_before_a_restart_past_the_deadline_is_delivered(
    factory: HookFactory, clock: FakeClock
) -> None:
    # The first check is always made: a paid video is not thrown away as a timeout.
    finished = task("task-1", "succeeded")
    factory.hook.aget_task.return_value = finished

    events = await run(make_trigger(deadline=START - 1))

    assert [(e["status"], e["task"]) for e in events] == [("success", finished.to_dict())]


@pytest.mark.parametrize(
    "error",
    [
        GPTProtoAuthError("key rejected", http_status=401),
        GPTProtoNotFoundError("no such task", http_status=404),
        GPTProtoBadRequestError("bad id", http_status=400),
    ],
    ids=["auth", "not-found", "bad-request"],
)
async def test_a_permanent_error_ends_at_once(
    factory: HookFactory, clock: FakeClock, error: GPTProtoError
) -> None:
    factory.hook.aget_task.side_effect = [task("task-1", "running"), error]

    events = await run(make_trigger(poll_interval=10, deadline=START + 3600))

    assert len(events) == 1
    assert events[0]["status"] == "error"
    assert str(error) in events[0]["message"]
    assert events[0]["task"]["status"] == "running"  # the last known state travels along
    assert clock.sleeps == [10.0]
    factory.hook.aclose.assert_awaited_once_with()


async def test_transient_errors_back_off_and_a_good_poll_resets_the_backoff(
    factory: HookFactory, clock: FakeClock
) -> None:
    finished = task("task-1", "succeeded")
    factory.hook.aget_task.side_effect = [
        GPTProtoServerError("bad gateway", http_status=502),
        GPTProtoConnectionError("reset", request_sent=True),
        task("task-1", "running"),
        GPTProtoRateLimitError("slow down", http_status=429),
        GPTProtoResponseError("garbled body"),
        finished,
    ]

    events = await run(make_trigger(poll_interval=1, deadline=START + 3600))

    assert [e["status"] for e in events] == ["success"]
    assert clock.sleeps == [2.0, 4.0, 1.0, 2.0, 4.0]


async def test_backoff_is_capped(factory: HookFactory, clock: FakeClock) -> None:
    error = GPTProtoServerError("unavailable", http_status=503)
    factory.hook.aget_task.side_effect = [error, error, error, task("task-1", "succeeded")]

    events = await run(make_trigger(poll_interval=100))

    assert [e["status"] for e in events] == ["success"]
    assert clock.sleeps == [200.0, MAX_POLL_BACKOFF_SECONDS, MAX_POLL_BACKOFF_SECONDS]


async def test_transient_errors_until_the_deadline_end_in_a_timeout(
    factory: HookFactory, clock: FakeClock
) -> None:
    factory.hook.aget_task.side_effect = GPTProtoServerError("down", http_status=500)

    events = await run(make_trigger(poll_interval=1, deadline=START + 5))

    assert [(e["status"], e["task"]) for e in events] == [("timeout", None)]
    assert clock.sleeps == [2.0, 3.0]


def test_serialize_round_trips_every_argument() -> None:
    trigger = make_trigger(poll_interval=7, deadline=START + 60, cancel_on_kill=False)

    classpath, kwargs = trigger.serialize()

    assert classpath == "airflow_provider_gptproto.triggers.gptproto.GPTProtoTaskTrigger"
    assert kwargs == {
        "gptproto_task_id": "task-1",
        "gptproto_conn_id": "gptproto_unit",
        "poll_interval": 7.0,
        "deadline": START + 60,
        "cancel_on_kill": False,
    }
    assert GPTProtoTaskTrigger(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("video_bytes", "expected"),
    [(3_145_728, 3_145_728), (0, 0), (None, None), (-1, None), (True, None), ("3145728", None), (1.5, None)],
)
def test_parse_event_keeps_only_a_plausible_measured_size(video_bytes: Any, expected: int | None) -> None:
    finished = task("task-1", "succeeded")
    payload = make_trigger()._event("success", finished, "done", video_bytes=video_bytes).payload

    outcome = parse_event(payload)

    assert (outcome.status, outcome.task, outcome.message) == ("success", finished, "done")
    assert outcome.video_bytes == expected
    assert outcome.video_size(VIDEO_URL) == expected  # stands in for the hook's HEAD
