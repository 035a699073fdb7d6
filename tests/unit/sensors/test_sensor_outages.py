"""GPTProtoTaskSensor rides out API outages in poke and reschedule mode with the trigger's backoff."""

from __future__ import annotations

import time
from typing import Any
from unittest import mock

import pytest
from airflow.sdk.bases.sensor import AirflowRescheduleException  # whichever class the sensor raises

from airflow_provider_gptproto.exceptions import GPTProtoAuthError, GPTProtoServerError
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.links.gptproto import GPTProtoVideoLink
from airflow_provider_gptproto.models import GenerationTask, TaskStatus
from airflow_provider_gptproto.models.poll import poll_backoff
from airflow_provider_gptproto.sensors.gptproto import POLL_FAILURES_KEY, GPTProtoTaskSensor

VIDEO_URL = "https://cdn.example.com/t1.mp4"
RUNNING = GenerationTask(task_id="t1", status=TaskStatus.RUNNING)
DONE = GenerationTask(task_id="t1", status=TaskStatus.SUCCEEDED, video_url=VIDEO_URL)


def outage() -> GPTProtoServerError:
    return GPTProtoServerError("overloaded", http_status=503)


class Store:
    """A dict behind the task state store's get/set/delete."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.calls: list[str] = []

    def get(self, key: str) -> Any:
        self.calls.append("get")
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.calls.append("set")
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.calls.append("delete")
        self.data.pop(key, None)


def sensor(replies: list[Any], **kwargs: Any) -> GPTProtoTaskSensor:
    op = GPTProtoTaskSensor(task_id="wait", gptproto_task_id="t1", poke_interval=2, timeout=3600, **kwargs)
    hook = mock.create_autospec(GPTProtoHook, instance=True)
    hook.get_task.side_effect = replies
    hook.video_size.return_value = 1234
    op.__dict__["hook"] = hook
    return op


def context(store: Store | None = None) -> dict[str, Any]:
    ti = mock.MagicMock()
    ti.get_first_reschedule_date.return_value = None
    return {"ti": ti, "task_state_store": store}


def test_the_sensor_polls_with_one_attempt_per_poke() -> None:
    op = GPTProtoTaskSensor(task_id="wait", gptproto_task_id="t1")
    assert op.hook._retry_limit == 1
    assert op.poke_interval == 10


def test_poke_mode_rides_out_an_outage_with_the_shared_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    op = sensor([RUNNING, *[outage()] * 6, RUNNING, DONE])

    result = op.execute(context())

    assert result["status"] == "succeeded"
    assert sleeps == [2, *(poll_backoff(2, n) for n in range(1, 7)), 2]
    assert sleeps[1:7] == [4, 8, 16, 32, 64, 128]


def test_a_permanent_error_still_fails_the_poke() -> None:
    op = sensor([GPTProtoAuthError("bad key", http_status=401)])
    with pytest.raises(GPTProtoAuthError):
        op.poke(context())


def test_reschedule_mode_does_not_fail_the_try_and_keeps_the_count_across_reschedules() -> None:
    store = Store()
    delays = []
    for failures in range(1, 4):
        op = sensor([outage()], mode="reschedule")  # a new process per reschedule
        with pytest.raises(AirflowRescheduleException) as caught:
            op.execute(context(store))
        assert store.data[POLL_FAILURES_KEY] == failures
        delays.append(op._get_next_poke_interval(0.0, lambda: 0.0, 1))
        assert caught.value.reschedule_date is not None
    assert delays == [4, 8, 16]

    op = sensor([DONE], mode="reschedule")
    assert op.execute(context(store))["status"] == "succeeded"
    assert POLL_FAILURES_KEY not in store.data  # reset once the API answers


def test_reschedule_mode_without_failures_costs_one_store_read() -> None:
    store = Store()
    op = sensor([RUNNING], mode="reschedule")
    with pytest.raises(AirflowRescheduleException):
        op.execute(context(store))
    assert store.calls == ["get"]


def test_the_backoff_never_runs_past_the_timeout() -> None:
    op = sensor([outage()] * 9)
    for _ in range(9):
        op.poke(context())
    assert op._get_next_poke_interval(0.0, lambda: 3500.0, 1) == 100.0


# ----------------------------------------------------------------------------- the video link


def test_the_link_reads_what_the_operator_announced_without_an_xcom_lookup() -> None:
    op = sensor([DONE])
    ctx = context()
    ctx["ti"].task = op
    link = GPTProtoVideoLink()
    with mock.patch("airflow.sdk.bases.xcom.BaseXCom.get_one") as xcom_lookup:
        assert link.get_link(op, ti_key=ctx["ti"]) == ""  # nothing announced yet (e.g. a failed try)
        op.poke(ctx)
        assert link.get_link(op, ti_key=ctx["ti"]) == VIDEO_URL
    xcom_lookup.assert_not_called()
