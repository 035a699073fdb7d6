"""The operator's task-state-store wrapper: one key, few round trips, tolerant of odd values."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_gptproto.utils.task_state import TASK_KEY, RemoteTaskRecord, TaskState
from tests.unit.fakes import CountingStore


def test_a_first_create_reads_once_and_writes_twice() -> None:
    store = CountingStore()
    state = TaskState({"task_state_store": store})
    assert state.load() is None
    assert state.create_started() is None
    state.mark_create_started("seedance-1-0-pro")
    state.save(RemoteTaskRecord("task-1", 1234.5))
    assert store.calls == [f"get {TASK_KEY}", f"set {TASK_KEY}", f"set {TASK_KEY}"]
    assert store.data[TASK_KEY] == {"task_id": "task-1", "deadline": 1234.5}


def test_the_marker_of_an_interrupted_create_is_seen_by_the_next_try() -> None:
    store = CountingStore()
    TaskState({"task_state_store": store}).mark_create_started("m1")
    later = TaskState({"task_state_store": store})
    assert later.load() is None
    started = later.create_started()
    assert started is not None and started[1] == "m1" and started[0] > 0


def test_a_saved_record_is_reloaded_and_clear_forgets_it() -> None:
    store = CountingStore({TASK_KEY: {"task_id": "t9", "deadline": 99}})
    state = TaskState({"task_state_store": store})
    assert state.load() == RemoteTaskRecord("t9", 99.0)
    assert state.create_started() is None
    state.clear()
    assert TASK_KEY not in store.data
    assert state.load() is None
    assert store.calls == [f"get {TASK_KEY}", f"delete {TASK_KEY}"]


@pytest.mark.parametrize(
    "raw", ["t1", 7, [], {"task_id": 5}, {"create_started": "yesterday"}, {"deadline": 3}]
)
def test_unexpected_values_read_as_nothing(raw: Any) -> None:
    state = TaskState({"task_state_store": CountingStore({TASK_KEY: raw})})
    assert state.load() is None
    assert state.create_started() is None


def test_without_a_store_everything_is_a_no_op() -> None:
    state = TaskState({})
    assert not state.durable
    state.mark_create_started("m")
    state.save(RemoteTaskRecord("t", None))
    state.clear()
    assert state.load() is None
