"""The plan for reading many tasks (hooks/_many_tasks.py), driven with replies made up here."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from airflow_provider_gptproto.exceptions import (
    GPTProtoAPIError,
    GPTProtoBadRequestError,
    GPTProtoListUnavailableError,
    GPTProtoServerError,
)
from airflow_provider_gptproto.hooks._many_tasks import (
    BATCH_READ_IDS,
    ListRead,
    Read,
    Reply,
    SingleRead,
    arun_plan,
    list_unsupported,
    read_many,
    run_plan,
)
from airflow_provider_gptproto.models import GenerationTask, TaskList, TaskStatus


def _task(task_id: str) -> GenerationTask:
    return GenerationTask(task_id=task_id, status=TaskStatus.RUNNING)


class Server:
    """Answers reads from ``known``; the list endpoint leaves out ``unlisted`` (or is missing)."""

    def __init__(self, known: list[str], unlisted: tuple[str, ...] = (), has_list: bool = True) -> None:
        self.known, self.unlisted, self.has_list = known, unlisted, has_list
        self.reads: list[Read] = []

    def perform(self, read: Read) -> Reply:
        self.reads.append(read)
        if isinstance(read, SingleRead):
            return _task(read.task_id) if read.task_id in self.known else None
        if not self.has_list:
            return None
        items = [_task(i) for i in read.ids if i in self.known and i not in self.unlisted]
        return TaskList(items=[*items, _task("not-asked-for")], total=len(items) + 1)


def test_one_list_read_per_hundred_ids_then_single_reads_of_what_the_list_left_out() -> None:
    ids = [f"t{i}" for i in range(BATCH_READ_IDS + 5)]
    server = Server(known=ids, unlisted=("t3",))

    found = run_plan(read_many([*ids, "gone"]), server.perform)

    assert sorted(found) == sorted(ids)  # "gone" is unknown, "not-asked-for" was not asked for
    assert server.reads == [
        ListRead(ids[:BATCH_READ_IDS]),
        ListRead([*ids[BATCH_READ_IDS:], "gone"]),
        SingleRead("t3"),
        SingleRead("gone"),
    ]


def test_without_a_list_endpoint_the_list_is_asked_once_then_each_id_alone() -> None:
    ids = [f"t{i}" for i in range(2 * BATCH_READ_IDS)]
    server = Server(known=ids, has_list=False)

    found = asyncio.run(arun_plan(read_many(ids), _async(server)))

    assert sorted(found) == sorted(ids)
    assert server.reads[0] == ListRead(ids[:BATCH_READ_IDS])
    assert server.reads[1:] == [SingleRead(i) for i in ids]


def test_no_ids_no_reads() -> None:
    server = Server(known=[])
    assert run_plan(read_many([]), server.perform) == {}
    assert server.reads == []


@pytest.mark.parametrize(
    "exc, unsupported",
    [
        (GPTProtoListUnavailableError("no list", http_status=404), True),
        (GPTProtoAPIError("not allowed", http_status=405), True),
        (GPTProtoBadRequestError("no such filter", http_status=400), True),
        (GPTProtoServerError("boom", http_status=500), False),
    ],
)
def test_which_refusals_mean_read_one_by_one(exc: GPTProtoAPIError, unsupported: bool) -> None:
    assert list_unsupported(exc) is unsupported


def _async(server: Server) -> Callable[[Read], Awaitable[Reply]]:
    async def perform(read: Read) -> Reply:
        return server.perform(read)

    return perform
