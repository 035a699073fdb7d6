"""GPTProtoBatchTrigger with a stub hook: when it fires, what it reports, and its guarded on_kill."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_gptproto.exceptions import GPTProtoAuthError, GPTProtoServerError
from airflow_provider_gptproto.models import GenerationTask, TaskStatus
from airflow_provider_gptproto.triggers.batch import GPTProtoBatchTrigger, parse_batch_event
from tests.support.supervisor_comms import FakeComms, supervisor_comms, task_instance


class StubHook:
    """Each poll ends the next ``per_poll`` tasks (in watch order); records every call."""

    def __init__(self, per_poll: int = 1, errors: list[BaseException] | None = None) -> None:
        self.per_poll = per_poll
        self.errors = errors or []
        self.polls: list[list[str]] = []
        self.finished: set[str] = set()
        self.cancelled: list[str] = []

    async def aget_tasks(self, ids: list[str]) -> dict[str, GenerationTask]:
        self.polls.append(list(ids))
        if self.errors:
            raise self.errors.pop(0)
        self.finished.update([i for i in ids if i not in self.finished][: self.per_poll])
        status = {True: TaskStatus.SUCCEEDED, False: TaskStatus.RUNNING}
        return {i: GenerationTask(task_id=i, status=status[i in self.finished]) for i in ids if i != "gone"}

    async def acancel_task(self, task_id: str) -> None:
        self.cancelled.append(task_id)

    async def aclose(self) -> None:
        pass


def _run(trigger: GPTProtoBatchTrigger) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload  # type: ignore[no-any-return]
        raise AssertionError("no event")

    return asyncio.run(first())


def _trigger(hook: StubHook, ids: list[str], **kwargs: Any) -> GPTProtoBatchTrigger:
    trigger = GPTProtoBatchTrigger({i: None for i in ids}, poll_interval=0.01, **kwargs)
    trigger._hook = hook  # type: ignore[assignment]
    return trigger


def test_fires_when_enough_finished_and_reads_all_ids_per_poll() -> None:
    hook = StubHook(per_poll=1)
    event = _run(_trigger(hook, ["a", "b", "c", "d"], min_finished=2))
    assert event["status"] == "ready"
    assert sorted(event["tasks"]) == ["a", "b"]
    assert hook.polls == [["a", "b", "c", "d"], ["b", "c", "d"]]  # one batched read per poll
    outcome = parse_batch_event(event)
    assert outcome.tasks["a"].status is TaskStatus.SUCCEEDED


def test_late_and_missing_tasks_count_as_finished() -> None:
    hook = StubHook(per_poll=0)
    trigger = GPTProtoBatchTrigger(
        {"late": time.time() - 1, "gone": None}, poll_interval=0.01, min_finished=2
    )
    trigger._hook = hook  # type: ignore[assignment]
    event = _run(trigger)
    assert event["timed_out"] == ["late"] and event["missing"] == ["gone"]


def test_max_wait_ready_fires_before_min_finished() -> None:
    hook = StubHook(per_poll=1)
    event = _run(_trigger(hook, ["a", "b", "c"], min_finished=3, max_wait_ready=0.0))
    assert sorted(event["tasks"]) == ["a"]  # a finished video does not wait for stragglers


def test_transient_errors_are_waited_out_and_permanent_ones_end_it() -> None:
    hook = StubHook(per_poll=2, errors=[GPTProtoServerError("boom", http_status=500)])
    assert _run(_trigger(hook, ["a", "b"], min_finished=2))["status"] == "ready"
    assert len(hook.polls) == 2
    hook = StubHook(errors=[GPTProtoAuthError("bad key", http_status=401)])
    assert _run(_trigger(hook, ["a"]))["status"] == "error"


def test_batch_deadline_fires_with_what_finished() -> None:
    event = _run(_trigger(StubHook(per_poll=0), ["a"], deadline=time.time() - 1))
    assert event["status"] == "deadline"


def test_serialize_round_trips() -> None:
    trigger = GPTProtoBatchTrigger({"a": 1.0}, "c", 2.0, 3.0, 1, 4.0, False)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_gptproto.triggers.batch.GPTProtoBatchTrigger"
    assert GPTProtoBatchTrigger(**kwargs).serialize() == (path, kwargs)


@pytest.mark.parametrize("state, cancelled", [("failed", True), ("deferred", False)])
def test_on_kill_cancels_unfinished_tasks_only_when_a_user_stopped_it(
    monkeypatch: pytest.MonkeyPatch, state: str, cancelled: bool
) -> None:
    hook = StubHook(per_poll=1)
    ids = [f"t{i}" for i in range(50)]
    trigger = _trigger(hook, ids, min_finished=50)
    trigger.task_instance = task_instance()

    async def main() -> None:
        # Wait for the second poll rather than a fixed time: a loaded machine may poll late.
        # One task ends per poll, so most of the 50 still run when the wait is cancelled.
        second_poll = asyncio.Event()
        read = hook.aget_tasks

        async def counted(ids: list[str]) -> dict[str, GenerationTask]:
            tasks = await read(ids)
            if len(hook.polls) >= 2:
                second_poll.set()
            return tasks

        hook.aget_tasks = counted  # type: ignore[method-assign]
        run = asyncio.ensure_future(trigger.run().__anext__())
        await asyncio.wait_for(second_poll.wait(), timeout=30)
        run.cancel()
        await trigger.on_kill()

    with supervisor_comms(monkeypatch, FakeComms(state=state)):
        asyncio.run(main())
    running = sorted(set(ids) - hook.finished)
    assert running and len(running) < len(ids)
    assert sorted(hook.cancelled) == (running if cancelled else [])
