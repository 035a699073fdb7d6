"""utils.kill_guard: cancel only when Airflow confirms the task is no longer deferred."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_gptproto.triggers.gptproto import GPTProtoTaskTrigger
from airflow_provider_gptproto.utils import kill_guard
from airflow_provider_gptproto.utils.kill_guard import user_stopped_task
from tests.support.supervisor_comms import FakeComms, supervisor_comms, task_instance

LOG = logging.getLogger("test_kill_guard")


def _trigger(ti: Any = None) -> GPTProtoTaskTrigger:
    trigger = GPTProtoTaskTrigger("remote-1")
    trigger.task_instance = ti if ti is not None else task_instance()
    return trigger


@pytest.mark.parametrize("state", ["failed", "success", None, "up_for_retry", "scheduled", "removed"])
async def test_a_task_no_longer_deferred_was_stopped_by_a_user(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, state: str | None
) -> None:
    with supervisor_comms(monkeypatch, FakeComms(state=state)) as comms, caplog.at_level(logging.INFO):
        assert await user_stopped_task(_trigger(), LOG) is True
    (asked,) = comms.asked
    assert (asked.dag_id, asked.run_ids, asked.task_ids, asked.map_index) == ("d", ["r"], ["generate"], -1)
    assert f"is now {state}: a user ended it" in caplog.text


async def test_a_task_still_deferred_moved_or_is_stopping(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with supervisor_comms(monkeypatch, FakeComms(state="deferred")), caplog.at_level(logging.INFO):
        assert await user_stopped_task(_trigger(), LOG) is False
    assert "still deferred" in caplog.text and "another triggerer" in caplog.text


@pytest.mark.parametrize("state, expected", [("deferred", False), ("failed", True)])
async def test_a_mapped_task_is_looked_up_by_its_map_index(
    monkeypatch: pytest.MonkeyPatch, state: str, expected: bool
) -> None:
    with supervisor_comms(monkeypatch, FakeComms(state=state)) as comms:
        assert await user_stopped_task(_trigger(task_instance(map_index=7)), LOG) is expected
    assert comms.asked[0].map_index == 7


@pytest.mark.parametrize(
    "comms, reason",
    [
        (FakeComms(missing=True), "did not report a state"),
        (FakeComms(error=RuntimeError("api-server unreachable")), "RuntimeError: api-server unreachable"),
        (None, "no channel to Airflow"),
        (object(), "no channel to Airflow"),  # a channel without asend (an unknown Airflow)
    ],
)
async def test_an_unreadable_state_never_cancels(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, comms: Any, reason: str
) -> None:
    with supervisor_comms(monkeypatch, comms):
        assert await user_stopped_task(_trigger(), LOG) is False
    assert "Not cancelling" in caplog.text and reason in caplog.text


async def test_a_silent_airflow_never_cancels(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kill_guard, "STATE_READ_TIMEOUT_SECONDS", 0.05)
    with supervisor_comms(monkeypatch, FakeComms(hang=True)):
        assert await user_stopped_task(_trigger(), LOG) is False
    assert "did not report the task's state" in caplog.text


async def test_a_trigger_without_task_instance_never_cancels(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    trigger = GPTProtoTaskTrigger("remote-1")
    with supervisor_comms(monkeypatch, FakeComms(state="failed")) as comms:
        assert await user_stopped_task(trigger, LOG) is False
    assert comms.asked == [] and "no task instance" in caplog.text
