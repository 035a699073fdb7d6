"""triggers/base.in_own_task: a wait polls outside the trigger's task, and a cancel reaches it intact.

Both triggers are run the way Airflow's triggerer runs them: iterated inside a task of their own,
cancelled through that task with Airflow's message for a user's action, or none (a shutdown).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_gptproto.models import GenerationTask, TaskStatus
from airflow_provider_gptproto.triggers.base import GPTProtoPollingTrigger
from airflow_provider_gptproto.triggers.batch import GPTProtoBatchTrigger
from airflow_provider_gptproto.triggers.gptproto import GPTProtoTaskTrigger
from tests.unit.fakes import VIDEO_URL

USER_ACTION = "__airflow_user_action__"  # Airflow's _USER_ACTION_CANCEL_MSG (triggerer_job_runner)


class StubHook:
    """Answers every status check with ``status``, after ``before_reply`` (which may block)."""

    def __init__(self, status: str, before_reply: Callable[[], Any]) -> None:
        self.status, self.before_reply, self.closed = TaskStatus(status), before_reply, False

    def _task(self, task_id: str) -> GenerationTask:
        return GenerationTask(task_id=task_id, status=self.status, video_url=VIDEO_URL)

    async def aget_task(self, task_id: str) -> GenerationTask:
        await self.before_reply()
        return self._task(task_id)

    async def aget_tasks(self, ids: list[str]) -> dict[str, GenerationTask]:
        await self.before_reply()
        return {i: self._task(i) for i in ids}

    async def avideo_size(self, url: str) -> int:
        await self.before_reply()
        return 1024

    async def aclose(self) -> None:
        self.closed = True


def make(kind: str, hook: StubHook) -> GPTProtoPollingTrigger:
    trigger: GPTProtoPollingTrigger
    if kind == "task":
        trigger = GPTProtoTaskTrigger("t1", poll_interval=5)
    else:
        trigger = GPTProtoBatchTrigger({"t1": None, "t2": None}, poll_interval=5, min_finished=2)
    trigger._hook = hook  # type: ignore[assignment]
    return trigger


@pytest.mark.parametrize("kind", ["task", "batch"])
async def test_a_wait_runs_outside_the_greenback_portal_the_triggerer_gives_the_trigger(kind: str) -> None:
    greenback = pytest.importorskip("greenback")  # Airflow 3.0.6 has no portal (and no greenback)
    seen: list[tuple[bool, asyncio.Task[Any] | None]] = []

    async def note() -> None:
        seen.append((greenback.has_portal(), asyncio.current_task()))

    trigger = make(kind, StubHook("succeeded", note))

    async def run_trigger() -> tuple[asyncio.Task[Any] | None, list[Any]]:
        await greenback.ensure_portal()  # as Airflow's TriggerRunner.run_trigger does
        assert greenback.has_portal()
        return asyncio.current_task(), [event.payload async for event in trigger.run()]

    runner, events = await asyncio.create_task(run_trigger())

    assert [e["status"] for e in events] == ["success" if kind == "task" else "ready"]
    assert seen, "the stub was never asked"
    assert all(not portal and task is not runner for portal, task in seen), seen


class Running:
    """A trigger iterated in its own task, as Airflow's ``run_trigger`` iterates it, once its wait
    is inside a status check; ``stops`` is what each CancelledError that reached it carried (Airflow
    reads ``e.args[0]`` to tell a user's action from a shutdown)."""

    def __init__(self, kind: str, hook: StubHook, asked: asyncio.Event) -> None:
        self.hook, self.asked, self.trigger = hook, asked, make(kind, hook)
        self.stops: list[tuple[Any, ...]] = []
        self.order: list[str] = []

    async def start(self) -> asyncio.Task[None]:
        runner = asyncio.create_task(self._run())
        await asyncio.wait_for(asyncio.shield(self.asked.wait()), 10)
        return runner

    async def _run(self) -> None:
        try:
            async for _ in self.trigger.run():
                raise AssertionError("no event expected")
        except asyncio.CancelledError as stop:
            self.stops.append(stop.args)
            self.order.append(f"trigger ended, session closed: {self.hook.closed}")
            raise


@pytest.mark.parametrize("message", [USER_ACTION, None], ids=["user-action", "shutdown"])
@pytest.mark.parametrize("kind", ["task", "batch"])
async def test_cancelling_the_trigger_cancels_its_wait_with_the_same_message(
    kind: str, message: str | None
) -> None:
    asked, in_poll = asyncio.Event(), []

    async def hang() -> None:
        asked.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError as stop:
            in_poll.append(stop.args)
            raise

    running = Running(kind, StubHook("running", hang), asked)
    runner = await running.start()
    runner.cancel(message) if message else runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner

    expected = (message,) if message else ()
    assert in_poll == [expected]
    assert running.stops == [expected]
    assert running.hook.closed  # the shared session is released


@pytest.mark.parametrize("kind", ["task", "batch"])
async def test_the_trigger_sees_the_message_even_when_the_wait_raised_its_own_cancel(kind: str) -> None:
    """asyncio passes on the wait's own CancelledError (here without a message, as Python 3.10's
    tasks do); Airflow's on_kill check must still see the message it cancelled with."""
    asked = asyncio.Event()

    async def hang() -> None:
        asked.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise asyncio.CancelledError() from None

    running = Running(kind, StubHook("running", hang), asked)
    runner = await running.start()
    runner.cancel(USER_ACTION)
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert running.stops == [(USER_ACTION,)]


@pytest.mark.parametrize("kind", ["task", "batch"])
async def test_a_second_cancel_does_not_end_the_trigger_before_its_wait(kind: str) -> None:
    asked, let_go, order = asyncio.Event(), asyncio.Event(), []
    stopping, absorbed = asyncio.Event(), asyncio.Event()

    async def slow_to_stop() -> None:
        asked.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopping.set()
            while not let_go.is_set():  # a teardown that finishes whatever comes (a second cancel)
                try:
                    await let_go.wait()
                except asyncio.CancelledError:
                    absorbed.set()
            order.append("wait ended")
            raise

    running = Running(kind, StubHook("running", slow_to_stop), asked)
    running.order = order
    runner = await running.start()
    runner.cancel(USER_ACTION)
    await asyncio.wait_for(asyncio.shield(stopping.wait()), 10)
    runner.cancel()  # e.g. the triggerer shutting down meanwhile
    try:
        await asyncio.wait_for(asyncio.shield(absorbed.wait()), 10)  # passed on to the wait
        assert not runner.done(), "the trigger ended while its wait was still stopping"
    finally:
        let_go.set()  # also when the assertion failed: the wait must not outlive the test
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert order == ["wait ended", "trigger ended, session closed: True"]
    assert running.stops == [(USER_ACTION,)]


@pytest.mark.parametrize("ending", ["returns", "raises"])
@pytest.mark.parametrize("kind", ["task", "batch"])
async def test_a_cancelled_trigger_yields_no_event_however_its_wait_ended(
    kind: str, ending: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A wait that answers its cancel by returning, or by failing, must not turn a user's stop into
    an event: Airflow would then skip on_kill."""
    asked = asyncio.Event()

    async def hang() -> None:
        if asked.is_set():
            return  # later calls (the video's size) answer at once
        asked.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if ending == "raises":
                raise RuntimeError("connection reset while stopping") from None

    running = Running(kind, StubHook("running", hang), asked)
    if ending == "returns":
        running.hook.status = TaskStatus.SUCCEEDED  # the check it was in "completes"
    runner = await running.start()
    caplog.set_level(logging.DEBUG, logger="airflow_provider_gptproto.triggers.base")
    runner.cancel(USER_ACTION)
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert running.stops == [(USER_ACTION,)]  # and no event: Running fails on one
    if ending == "raises":
        assert "connection reset while stopping" in caplog.text
