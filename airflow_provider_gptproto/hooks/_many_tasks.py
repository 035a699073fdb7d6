"""Reading many tasks' status in few requests: one I/O-free plan (a generator yielding reads and
sent their replies, None when a read found nothing usable) that ``get_tasks`` and ``aget_tasks`` drive.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass

from airflow_provider_gptproto.exceptions import GPTProtoAPIError, GPTProtoBadRequestError
from airflow_provider_gptproto.models import GenerationTask, TaskList

# Ids per status read on the list endpoint (its page_size allows 500; URLs stay short at 100).
BATCH_READ_IDS = 100
# A list read refused with one of these means "no usable list endpoint here" (none at all, the
# method not allowed, or no id filter): the ids are read one by one instead.
LIST_UNSUPPORTED_HTTP_STATUS = (404, 405)


@dataclass(frozen=True)
class ListRead:
    """Read these ids' tasks in one list request (the reply is a ``TaskList``)."""

    ids: list[str]


@dataclass(frozen=True)
class SingleRead:
    """Read this one task (the reply is a ``GenerationTask``, or None when the server has no such task)."""

    task_id: str


Read = ListRead | SingleRead
Reply = TaskList | GenerationTask | None
Plan = Generator[Read, Reply, dict[str, GenerationTask]]


def read_many(task_ids: Sequence[str]) -> Plan:
    """List reads first, then single reads of the ids the lists left out (past the 7-day window, or
    all after one refused list read). Ids unknown to the server are left out of the result."""
    found: dict[str, GenerationTask] = {}
    for start in range(0, len(task_ids), BATCH_READ_IDS):
        chunk = list(task_ids[start : start + BATCH_READ_IDS])
        page = yield ListRead(chunk)
        if not isinstance(page, TaskList):
            break  # no usable list endpoint: asking again for the next chunk would be refused too
        found.update((t.task_id, t) for t in page.items if t.task_id in chunk)
    for task_id in task_ids:
        if task_id not in found:
            task = yield SingleRead(task_id)
            if isinstance(task, GenerationTask):
                found[task_id] = task
    return found


def list_unsupported(exc: GPTProtoAPIError) -> bool:
    """Whether a refused list read means "read the ids one by one" rather than an error to raise."""
    return isinstance(exc, GPTProtoBadRequestError) or exc.http_status in LIST_UNSUPPORTED_HTTP_STATUS


def run_plan(plan: Plan, perform: Callable[[Read], Reply]) -> dict[str, GenerationTask]:
    """Drive ``plan`` with a blocking ``perform``."""
    reply: Reply = None
    try:
        while True:
            reply = perform(plan.send(reply))
    except StopIteration as done:
        return done.value


async def arun_plan(plan: Plan, perform: Callable[[Read], Awaitable[Reply]]) -> dict[str, GenerationTask]:
    """Drive ``plan`` with an async ``perform``."""
    reply: Reply = None
    try:
        while True:
            reply = await perform(plan.send(reply))
    except StopIteration as done:
        return done.value
