"""GPTProtoTaskSensor with a mocked hook: poke, poke/reschedule modes, deferrable, execute_complete."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from airflow.exceptions import AirflowRescheduleException
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    PokeReturnValue,
    TaskDeferred,
)

from airflow_provider_gptproto.exceptions import (
    GPTProtoAuthError,
    GPTProtoError,
    GPTProtoTaskContentPolicyError,
    GPTProtoTaskFailedError,
)
from airflow_provider_gptproto.sensors import gptproto as sensor_module
from airflow_provider_gptproto.sensors.gptproto import GPTProtoTaskSensor
from airflow_provider_gptproto.triggers.gptproto import GPTProtoTaskTrigger
from airflow_provider_gptproto.utils.results import TASK_ID_XCOM_KEY
from tests.unit.conftest import Sleeps
from tests.unit.fakes import VIDEO_URL, HookFactory, make_context, patch_hook, task, trigger_event

VIDEO_URL_KEY = "gptproto_video_url"
POLICY_CODE = "InputTextSensitiveContentDetected"


pytestmark = pytest.mark.usefixtures("no_real_sleep")


@pytest.fixture
def factory(monkeypatch: pytest.MonkeyPatch) -> HookFactory:
    return patch_hook(monkeypatch, sensor_module)


def make_sensor(**kwargs: Any) -> GPTProtoTaskSensor:
    params: dict[str, Any] = {
        "task_id": "watch",
        "gptproto_task_id": "task-1",
        "gptproto_conn_id": "gptproto_unit",
        "poke_interval": 2.0,
        "timeout": 60,
    }
    params.update(kwargs)
    return GPTProtoTaskSensor(**params)


# ------------------------------------------------------------------------------------------ poke


def test_poke_while_running_is_not_done_and_hides_the_link(factory: HookFactory) -> None:
    factory.hook.get_task.return_value = task("task-1", "running")
    context = make_context()

    assert make_sensor().poke(context) is False

    factory.hook.get_task.assert_called_once_with("task-1")
    assert context["ti"].pushes == [(VIDEO_URL_KEY, "")]  # the sensor does not own the id


def test_poke_of_a_succeeded_task_returns_it_and_publishes_the_video(factory: HookFactory) -> None:
    finished = task("task-1", "succeeded")
    factory.hook.get_task.return_value = finished
    context = make_context()

    outcome = make_sensor().poke(context)

    assert isinstance(outcome, PokeReturnValue)
    assert outcome.is_done is True
    assert outcome.xcom_value == {"kind": "generate", **finished.to_dict()}
    assert context["ti"].xcom(VIDEO_URL_KEY) == VIDEO_URL
    assert context["ti"].xcom(TASK_ID_XCOM_KEY) == "task-1"
    factory.hook.video_size.assert_called_once_with(VIDEO_URL)


def test_poke_of_a_failed_task_fails(factory: HookFactory) -> None:
    factory.hook.get_task.return_value = task("task-1", "failed", error_message="GPU fell over")

    with pytest.raises(GPTProtoTaskFailedError, match="GPU fell over"):
        make_sensor().poke(make_context())


@pytest.mark.parametrize(
    ("retry_on_content_policy", "expected"),
    [(False, AirflowFailException), (True, GPTProtoTaskContentPolicyError)],
    ids=["fail-fast", "retry"],
)
def test_poke_of_a_content_policy_rejection(
    factory: HookFactory, retry_on_content_policy: bool, expected: type[Exception]
) -> None:
    factory.hook.get_task.return_value = task("task-1", "failed", error_code=POLICY_CODE)

    with pytest.raises(expected):
        make_sensor(retry_on_content_policy=retry_on_content_policy).poke(make_context())


# ------------------------------------------------------------------------------ poke/reschedule


def test_poke_mode_reuses_one_hook_for_every_poke_and_closes_it(factory: HookFactory, sleeps: Sleeps) -> None:
    finished = task("task-1", "succeeded")
    factory.hook.get_task.side_effect = [task("task-1", "pending"), task("task-1", "running"), finished]

    result = make_sensor(mode="poke").execute(make_context())

    assert result == {"kind": "generate", **finished.to_dict()}
    assert factory.hook.get_task.call_count == 3
    assert sleeps.calls == [2.0, 2.0]
    assert factory.calls == [(("gptproto_unit",), {"retry_limit": 1})]  # one hook for all three pokes
    factory.hook.close.assert_called_once_with()


def test_reschedule_mode_gives_back_the_slot_and_closes_the_hook(factory: HookFactory) -> None:
    factory.hook.get_task.return_value = task("task-1", "running")

    with pytest.raises(AirflowRescheduleException):
        make_sensor(mode="reschedule").execute(make_context())

    factory.hook.close.assert_called_once_with()


def test_a_permanent_error_fails_the_sensor_and_closes_the_hook(factory: HookFactory) -> None:
    factory.hook.get_task.side_effect = GPTProtoAuthError("bad key", http_status=401)

    with pytest.raises(GPTProtoAuthError):
        make_sensor(mode="poke").execute(make_context())

    factory.hook.close.assert_called_once_with()


# ---------------------------------------------------------------------------------- deferrable


def test_deferrable_defers_without_owning_the_task(factory: HookFactory) -> None:
    factory.hook.get_task.return_value = task("task-1", "running")
    before = time.time()

    with pytest.raises(TaskDeferred) as deferred:
        make_sensor(deferrable=True, timeout=timedelta(minutes=5)).execute(make_context())

    assert deferred.value.method_name == "execute_complete"
    assert isinstance(deferred.value.trigger, GPTProtoTaskTrigger)
    kwargs = deferred.value.trigger.serialize()[1]
    assert before + 300 <= kwargs.pop("deadline") <= time.time() + 300
    assert kwargs == {
        "gptproto_task_id": "task-1",
        "gptproto_conn_id": "gptproto_unit",
        "poll_interval": 2.0,
        "cancel_on_kill": False,  # it never cancels a task someone else created
    }
    factory.hook.close.assert_called_once_with()


def test_deferrable_returns_a_finished_task_without_deferring(factory: HookFactory) -> None:
    finished = task("task-1", "succeeded")
    factory.hook.get_task.return_value = finished

    assert make_sensor(deferrable=True).execute(make_context()) == {"kind": "generate", **finished.to_dict()}
    factory.hook.close.assert_called_once_with()


def test_execute_complete_success_delivers_without_a_hook(factory: HookFactory) -> None:
    finished = task("task-1", "succeeded")
    context = make_context()

    result = make_sensor(deferrable=True).execute_complete(context, trigger_event("success", finished, 1024))

    assert result == {"kind": "generate", **finished.to_dict()}
    assert context["ti"].xcom(VIDEO_URL_KEY) == VIDEO_URL
    assert factory.calls == []


def test_execute_complete_timeout_is_a_sensor_timeout(factory: HookFactory) -> None:
    with pytest.raises(AirflowSensorTimeout):
        make_sensor().execute_complete(make_context(), trigger_event("timeout", task("task-1", "running")))

    factory.hook.cancel_task.assert_not_called()  # not its task to cancel


def test_execute_complete_failed_task_fails(factory: HookFactory) -> None:
    with pytest.raises(GPTProtoTaskFailedError):
        make_sensor().execute_complete(make_context(), trigger_event("failed", task("task-1", "expired")))


@pytest.mark.parametrize(
    "payload",
    [trigger_event("error", None), None, {"status": "later"}],
    ids=["error", "none", "unknown-status"],
)
def test_execute_complete_error_or_malformed_event_fails(factory: HookFactory, payload: Any) -> None:
    with pytest.raises(GPTProtoError):
        make_sensor().execute_complete(make_context(), payload)
