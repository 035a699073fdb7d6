"""GPTProtoBaseOperator and the hook mixin: one hook per execution, conf defaults, time budgets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_gptproto.hooks import mixin as hook_mixin
from airflow_provider_gptproto.operators.base import GPTProtoBaseOperator
from airflow_provider_gptproto.operators.batch import GPTProtoBatchGenerateVideosOperator
from airflow_provider_gptproto.operators.gptproto import GPTProtoGenerateVideoOperator
from airflow_provider_gptproto.sensors.gptproto import GPTProtoTaskSensor
from tests.unit.fakes import HookFactory, make_context, patch_hook


class Boom(Exception):
    pass


class TwoCalls(GPTProtoBaseOperator):
    """Uses the hook twice per phase; its execute raises when told to."""

    def __init__(self, *, fail: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail = fail

    def execute(self, context: Any) -> str:
        self.hook.get_task("a")
        self.hook.get_task("b")
        if self.fail:
            raise Boom("execute failed")
        return "done"

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> str:
        self.hook.get_task("c")
        return "completed"


class NoHook(GPTProtoBaseOperator):
    def execute(self, context: Any) -> None:
        return None


@pytest.fixture
def factory(monkeypatch: pytest.MonkeyPatch) -> HookFactory:
    return patch_hook(monkeypatch, hook_mixin)


@pytest.mark.parametrize("fail", [False, True], ids=["returns", "raises"])
def test_one_hook_per_execution_closed_when_execute_ends(factory: HookFactory, fail: bool) -> None:
    op = TwoCalls(task_id="t", gptproto_conn_id="gptproto_unit", fail=fail)
    if fail:
        with pytest.raises(Boom):
            op.execute(make_context())
    else:
        assert op.execute(make_context()) == "done"
    assert factory.calls == [(("gptproto_unit",), {})]  # one construction for both calls
    assert factory.hook.get_task.call_count == 2
    factory.hook.close.assert_called_once_with()


def test_execute_complete_closes_the_hook_too(factory: HookFactory) -> None:
    assert TwoCalls(task_id="t").execute_complete(make_context(), {}) == "completed"
    factory.hook.close.assert_called_once_with()


def test_a_phase_that_needs_no_hook_makes_none(factory: HookFactory) -> None:
    NoHook(task_id="t").execute(make_context())
    assert factory.calls == []
    factory.hook.close.assert_not_called()


def test_the_sensor_shares_the_mixin_with_one_attempt_per_poke(factory: HookFactory) -> None:
    sensor = GPTProtoTaskSensor(task_id="w", gptproto_task_id="t1", gptproto_conn_id="c1")
    assert sensor.hook is sensor.hook
    assert factory.calls == [(("c1",), {"retry_limit": 1})]


BUILDERS: dict[str, Any] = {
    "generate": lambda **kw: GPTProtoGenerateVideoOperator(task_id="g", prompt="a fox", **kw),
    "batch": lambda **kw: GPTProtoBatchGenerateVideosOperator(
        task_id="b", prompts=["a fox"], destination="/tmp/unused/", **kw
    ),
    "sensor": lambda **kw: GPTProtoTaskSensor(task_id="s", gptproto_task_id="t1", **kw),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_deferrable_defaults_to_the_config_option_read_when_the_task_is_built(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = BUILDERS[name]
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert build().deferrable is True
    assert build(deferrable=False).deferrable is False
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert build().deferrable is False
    assert build(deferrable=True).deferrable is True


@pytest.mark.parametrize("name", ["generate", "batch"])
def test_poll_interval_and_timeout_take_a_timedelta_or_seconds(name: str) -> None:
    op = BUILDERS[name](poll_interval=timedelta(seconds=15), timeout=timedelta(minutes=5))
    assert (op.poll_interval, op.timeout) == (15.0, 300.0)
    op = BUILDERS[name](poll_interval=2, timeout=90)
    assert (op.poll_interval, op.timeout) == (2.0, 90.0)
    assert isinstance(op.timeout, float)


@pytest.mark.parametrize("name", ["generate", "batch"])
@pytest.mark.parametrize("field", ["poll_interval", "timeout"])
@pytest.mark.parametrize("bad", [0, -5, timedelta(0), "soon", True])
def test_a_bad_duration_is_refused_naming_the_field(name: str, field: str, bad: Any) -> None:
    with pytest.raises(
        ValueError, match=rf"^{field} must be a positive number of seconds or a timedelta, got "
    ):
        BUILDERS[name](**{field: bad})


def test_the_batch_deadline_is_checked_the_same_way() -> None:
    assert BUILDERS["batch"](deadline=timedelta(hours=1)).deadline == 3600.0
    with pytest.raises(ValueError, match=r"^deadline must be a positive number of seconds"):
        BUILDERS["batch"](deadline=-1)
