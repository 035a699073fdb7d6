"""GPTProtoBatchTrigger: watch every in-flight task of a batch over one shared session.

One trigger per batch, not per video: each poll reads all watched ids with the list endpoint
filtered by id (100 ids per request, see ``GPTProtoHook.aget_tasks``). It never creates, so a
triggerer restart that re-runs it from its kwargs is harmless; its deadlines are absolute.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, NamedTuple

from airflow.triggers.base import TriggerEvent

from airflow_provider_gptproto.exceptions import GPTProtoError
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook, arun_poll
from airflow_provider_gptproto.models import GenerationTask
from airflow_provider_gptproto.models.poll import BatchWait
from airflow_provider_gptproto.triggers.base import GPTProtoPollingTrigger, in_own_task

CANCEL_TIMEOUT_SECONDS = 30.0
CANCEL_CONCURRENCY = 8


class GPTProtoBatchTrigger(GPTProtoPollingTrigger):
    """Poll a batch's in-flight tasks; fire once *enough* of them have finished.

    "Enough": ``min_finished`` watched tasks ended (or passed their own deadline), every one did, or
    the first to finish has waited ``max_wait_ready`` seconds (docs/batch.md, "Waiting").

    Event payload: ``{"status": "ready" | "deadline" | "error", "tasks": {remote id:
    GenerationTask.to_dict()} of the finished ones, "timed_out": [ids past their deadline],
    "missing": [ids the server no longer knows], "message"}``.

    :param watch: remote id -> absolute per-item deadline (unix seconds, or None).
    :param gptproto_conn_id: connection to poll with; resolved asynchronously, once.
    :param poll_interval: seconds between polls (default 10).
    :param deadline: the batch's absolute deadline; at it the trigger fires with what finished.
    :param min_finished: finished tasks that make a worker phase worthwhile (default 1).
    :param max_wait_ready: longest a finished task waits for others before firing (default 300 s).
    :param cancel_on_kill: as :class:`~airflow_provider_gptproto.triggers.base.GPTProtoPollingTrigger`'s.
    """

    def __init__(
        self,
        watch: Mapping[str, float | None],
        gptproto_conn_id: str = GPTProtoHook.default_conn_name,
        poll_interval: float = 10.0,
        deadline: float | None = None,
        min_finished: int = 1,
        max_wait_ready: float = 300.0,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__(gptproto_conn_id, poll_interval, deadline, cancel_on_kill)
        self.watch = dict(watch)
        self.min_finished = max(1, min(int(min_finished), len(self.watch) or 1))
        self.max_wait_ready = float(max_wait_ready)
        self._wait = BatchWait(
            self.watch, self.poll_interval, deadline, self.min_finished, self.max_wait_ready
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self._serialized(
            watch=self.watch, min_finished=self.min_finished, max_wait_ready=self.max_wait_ready
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        wait = self._wait
        try:
            read = lambda check: self.hook.aget_tasks(list(check.ids))  # noqa: E731
            status, message = await in_own_task(
                arun_poll(wait.plan(time.time()), read, self.log.log, asyncio.sleep, time.time)
            )
            tasks = {i: t.to_dict() for i, t in wait.done.items()}
            payload = {"tasks": tasks, "timed_out": wait.timed_out, "missing": wait.missing}
            yield TriggerEvent({"status": status, **payload, "message": message})
        finally:
            await self.cleanup()

    async def cancel_remote(self) -> None:
        await self._cancel_all([i for i in self.watch if i not in self._wait.finished])

    async def _cancel_all(self, task_ids: list[str]) -> None:
        """Cancel the tasks still queued or running; a finished one is left alone (a DELETE would
        erase its record, and with it a video a later try could still download)."""
        try:
            tasks = await asyncio.wait_for(self.hook.aget_tasks(task_ids), CANCEL_TIMEOUT_SECONDS / 2)
            task_ids = [i for i in task_ids if i in tasks and not tasks[i].is_terminal]
        except (GPTProtoError, asyncio.TimeoutError) as exc:
            self.log.warning("Could not read the tasks' states before cancelling (%s); cancelling all", exc)
        gate = asyncio.Semaphore(CANCEL_CONCURRENCY)

        async def cancel(task_id: str) -> bool:
            async with gate:
                try:
                    await self.hook.acancel_task(task_id)
                    return True
                except GPTProtoError as exc:
                    self.log.warning("Could not cancel GPTProto task %s: %s", task_id, exc)
                    return False

        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(cancel(i) for i in task_ids)), CANCEL_TIMEOUT_SECONDS
            )
            self.log.info("Cancelled %d of %d in-flight GPTProto tasks", sum(results), len(task_ids))
        except asyncio.TimeoutError:
            self.log.warning(
                "Cancelling %d GPTProto tasks timed out after %.0f s", len(task_ids), CANCEL_TIMEOUT_SECONDS
            )


class BatchOutcome(NamedTuple):
    status: str
    tasks: dict[str, GenerationTask]
    timed_out: list[str]
    missing: list[str]
    message: str


def parse_batch_event(event: Any) -> BatchOutcome:
    """Validate a batch trigger event payload (it crosses a process boundary as plain JSON)."""
    if not isinstance(event, dict) or event.get("status") not in ("ready", "deadline", "error"):
        raise GPTProtoError(f"Unexpected event from GPTProtoBatchTrigger: {str(event)[:200]}")
    raw = event.get("tasks") or {}
    tasks = {str(i): GenerationTask.from_dict(t) for i, t in raw.items() if isinstance(t, dict)}
    return BatchOutcome(
        event["status"],
        tasks,
        [str(i) for i in event.get("timed_out") or []],
        [str(i) for i in event.get("missing") or []],
        str(event.get("message") or ""),
    )
