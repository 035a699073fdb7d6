"""Stand-ins for the Airflow objects an operator, sensor or trigger touches, and a mocked hook.

Unit tests of the operators drive ``execute``/``execute_complete``/``poke`` directly with a context
built from these: a task instance that records its XCom pushes, a dict-backed task state store, and
a ``create_autospec`` of :class:`GPTProtoHook` (so a call with a wrong signature fails the test).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any
from unittest.mock import MagicMock, create_autospec

import pytest

from airflow_provider_gptproto.hooks import mixin as hook_mixin
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.models import GenerationTask, TaskStatus
from airflow_provider_gptproto.triggers.gptproto import GPTProtoTaskTrigger

VIDEO_URL = "https://cdn.gptproto.test/videos/v.mp4"
REQUEST_TIMEOUT = 30.0  # the mocked hook's per-request timeout (settings.timeout)
CREATED_AT = datetime(2026, 1, 1, tzinfo=timezone.utc)
CLOCK_START = 1_800_000_000.0
_real_asleep = asyncio.sleep  # before any test patches it


class FakeClock:
    """Time that moves only when the code under test sleeps (at once); every pause is recorded."""

    def __init__(self) -> None:
        self.now = CLOCK_START
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    monotonic = time

    def advance(self, seconds: float) -> None:
        """Stands in for ``time.sleep``: records the pause and moves the clock on, at once."""
        self.sleeps.append(seconds)
        self.now += seconds

    async def aadvance(self, seconds: float) -> None:
        """Stands in for ``asyncio.sleep``; still yields to the loop, as a real sleep does."""
        self.advance(seconds)
        await _real_asleep(0)


def patched_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A :class:`FakeClock` behind ``time.time`` and ``time.sleep`` for the rest of the test."""
    clock = FakeClock()
    monkeypatch.setattr(time, "time", clock.time)
    monkeypatch.setattr(time, "sleep", clock.advance)
    return clock


class CountingStore:
    """Stands in for context["task_state_store"]; every call would be a round trip to the API."""

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        self.data = dict(initial or {})
        self.calls: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.calls.append(f"get {key}")
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.calls.append(f"set {key}")
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.calls.append(f"delete {key}")
        self.data.pop(key, None)


class FakeTaskInstance:
    """Records XCom pushes in order; no first reschedule date (a sensor's first try)."""

    dag_id, run_id, task_id, map_index = "dag", "manual__2026-01-01", "generate", -1

    def __init__(self) -> None:
        self.pushes: list[tuple[str, Any]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushes.append((key, value))

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        """This task instance's own XComs only (what the operators read back after a deferral)."""
        assert task_ids == self.task_id
        return next((value for pushed, value in reversed(self.pushes) if pushed == key), None)

    def xcom(self, key: str) -> Any:
        """The last value pushed under ``key`` (KeyError if none was)."""
        for pushed_key, value in reversed(self.pushes):
            if pushed_key == key:
                return value
        raise KeyError(key)

    def get_first_reschedule_date(self, context: Any) -> datetime | None:
        return None


def make_context(store: CountingStore | None = None) -> dict[str, Any]:
    """A context with a recording ti and, unless ``store`` is None, a task state store."""
    context: dict[str, Any] = {"ti": FakeTaskInstance()}
    if store is not None:
        context["task_state_store"] = store
    return context


def task(
    task_id: str = "task-1", status: TaskStatus | str = TaskStatus.RUNNING, **fields: Any
) -> GenerationTask:
    """A remote task; a succeeded one gets VIDEO_URL unless ``video_url`` is given."""
    status = TaskStatus.parse(status)
    if status is TaskStatus.SUCCEEDED:
        fields.setdefault("video_url", VIDEO_URL)
    fields.setdefault("model", "seedance-1-0-lite-i2v-250428")
    return GenerationTask(task_id=task_id, status=status, created_at=CREATED_AT, **fields)


def trigger_event(
    status: str, remote: GenerationTask | None, video_bytes: int | None = None
) -> dict[str, Any]:
    """The payload the real trigger yields (built by the trigger itself, so the shapes cannot drift)."""
    message = f"GPTProto task task-1 {status}"
    payload: dict[str, Any] = (
        GPTProtoTaskTrigger("task-1")._event(status, remote, message, video_bytes).payload
    )
    return payload


class HookFactory:
    """Replaces the ``GPTProtoHook`` class in a module: every construction returns the same mock."""

    def __init__(self) -> None:
        self.hook: Any = create_autospec(GPTProtoHook, instance=True)
        self.hook.settings.timeout = REQUEST_TIMEOUT
        self.hook.video_size.return_value = 2 * 1_048_576
        self.hook.avideo_size.return_value = 2 * 1_048_576
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def creates(self, then: str = "running") -> None:
        """create_task answers a pending ``task-1``, which get_task then reports as ``then``."""
        self.hook.create_task.return_value = task("task-1", "pending")
        self.hook.get_task.return_value = task("task-1", then)

    def __call__(self, *args: Any, **kwargs: Any) -> MagicMock:
        self.calls.append((args, kwargs))
        return self.hook


def patch_hook(monkeypatch: pytest.MonkeyPatch, module: Any) -> HookFactory:
    factory = HookFactory()
    monkeypatch.setattr(module, "GPTProtoHook", factory)
    monkeypatch.setattr(hook_mixin, "GPTProtoHook", factory)  # the operators' and sensor's ``hook``
    return factory
