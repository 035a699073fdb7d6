"""GPTProtoHook.get_tasks / aget_tasks against the emulator: many statuses in one list request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.models import GenerationTask


def _read(hook: GPTProtoHook, ids: list[str], mode: str) -> dict[str, GenerationTask]:
    if mode == "sync":
        return hook.get_tasks(ids)

    async def main() -> dict[str, GenerationTask]:
        try:
            return await hook.aget_tasks(ids)
        finally:
            await hook.aclose()

    return asyncio.run(main())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_one_list_request_reads_many_and_unknown_ids_are_left_out(emulator: Any, mode: str) -> None:
    hook = GPTProtoHook()
    ids = [hook.create_task({"prompt": f"read {i}"}).task_id for i in range(5)]

    found = _read(GPTProtoHook(), [*ids, "task_doesnotexist"], mode)

    assert sorted(found) == sorted(ids)
    assert all(found[i].task_id == i for i in ids)
    assert emulator.stats()["requests"]["list"] == 1
    assert emulator.stats()["requests"]["get"] == 1  # only the id the list did not return


@pytest.mark.parametrize("status", [404, 405, 400])  # no endpoint, method not allowed, no id filter
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_without_a_list_endpoint_each_id_is_read_alone(emulator: Any, mode: str, status: int) -> None:
    hook = GPTProtoHook()
    ids = [hook.create_task({"prompt": f"alone {i}"}).task_id for i in range(3)]
    emulator.add_fault(endpoint="list", action="status", status=status)

    found = _read(GPTProtoHook(), [*ids, "task_doesnotexist"], mode)

    assert sorted(found) == sorted(ids)
    assert emulator.stats()["requests"]["list"] == 1
    assert emulator.stats()["requests"]["get"] == 4


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_refused_list_read_is_not_asked_again_for_the_next_hundred_ids(emulator: Any, mode: str) -> None:
    hook = GPTProtoHook()
    ids = [hook.create_task({"prompt": "many"}).task_id for _ in range(2)]
    emulator.add_fault(endpoint="list", action="status", status=404)
    unknown = [f"task_unknown{i}" for i in range(150)]  # two list chunks' worth of ids

    found = _read(GPTProtoHook(), [*ids, *unknown], mode)

    assert sorted(found) == sorted(ids)
    assert emulator.stats()["requests"]["list"] == 1
    assert emulator.stats()["requests"]["get"] == 152


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_other_list_errors_are_raised(emulator: Any, mode: str) -> None:
    from airflow_provider_gptproto.exceptions import GPTProtoAuthError

    emulator.add_fault(endpoint="list", action="status", status=401)
    with pytest.raises(GPTProtoAuthError):
        _read(GPTProtoHook(), ["task_a"], mode)
