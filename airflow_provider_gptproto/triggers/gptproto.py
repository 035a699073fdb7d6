"""GPTProtoTaskTrigger: wait for a remote task in the triggerer without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from airflow.triggers.base import TriggerEvent

from airflow_provider_gptproto.exceptions import GPTProtoError
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook, arun_poll
from airflow_provider_gptproto.models import GenerationTask
from airflow_provider_gptproto.models.poll import TRIGGER_POLL_JITTER, TaskEnd, poll_task
from airflow_provider_gptproto.triggers.base import GPTProtoPollingTrigger, in_own_task

CANCEL_TIMEOUT_SECONDS = 20.0


class GPTProtoTaskTrigger(GPTProtoPollingTrigger):
    """Poll one GPTProto task until it ends; yield exactly one event.

    Event payload: ``{"status": "success" | "failed" | "timeout" | "error", "task_id", "task"
    (GenerationTask.to_dict() or None), "message", "video_bytes"}``. ``video_bytes`` is the video's
    size from a HEAD made here, where waiting holds no worker slot (None if unknown). The other
    parameters are :class:`~airflow_provider_gptproto.triggers.base.GPTProtoPollingTrigger`'s; each
    interval after a good poll strays up to ±10% from ``poll_interval`` at random
    (:data:`~airflow_provider_gptproto.models.poll.TRIGGER_POLL_JITTER`), so that the waits a loop stall
    put in step drift apart again.

    :param gptproto_task_id: the remote task id (``task_id`` is taken: BaseTrigger sets it to the
        Airflow task's id when the triggerer attaches the task instance).
    """

    def __init__(
        self,
        gptproto_task_id: str,
        gptproto_conn_id: str = GPTProtoHook.default_conn_name,
        poll_interval: float = 10.0,
        deadline: float | None = None,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__(gptproto_conn_id, poll_interval, deadline, cancel_on_kill)
        self.gptproto_task_id = gptproto_task_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self._serialized(gptproto_task_id=self.gptproto_task_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            end, size = await in_own_task(self._wait())
            yield self._event(end.status, end.task, end.message, size)
        finally:
            await self.cleanup()

    async def _wait(self) -> tuple[TaskEnd, int | None]:
        """Poll until the task ends; then the video's size, here where waiting holds no worker slot."""
        task_id = self.gptproto_task_id
        plan = poll_task(
            task_id,
            self.poll_interval,
            time.time(),
            deadline=self.deadline,
            where="in the triggerer",
            jitter=TRIGGER_POLL_JITTER,
        )
        end = await arun_poll(
            plan, lambda _: self.hook.aget_task(task_id), self.log.log, asyncio.sleep, time.time
        )
        url = end.task.video_url if end.status == "success" and end.task else None
        return end, await self.hook.avideo_size(url) if url else None

    def _event(
        self, status: str, task: GenerationTask | None, message: str, video_bytes: int | None = None
    ) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "task_id": self.gptproto_task_id,
                "task": task.to_dict() if task else None,
                "message": message,
                "video_bytes": video_bytes,
            }
        )

    async def cancel_remote(self) -> None:
        try:
            await asyncio.wait_for(self.hook.acancel_task(self.gptproto_task_id), CANCEL_TIMEOUT_SECONDS)
            self.log.info(
                "Cancelled GPTProto task %s after the Airflow task was stopped", self.gptproto_task_id
            )
        except (GPTProtoError, asyncio.TimeoutError) as exc:
            self.log.warning("Could not cancel GPTProto task %s: %s", self.gptproto_task_id, exc)


class TriggerOutcome(NamedTuple):
    status: str
    task: GenerationTask | None
    message: str
    video_bytes: int | None

    def video_size(self, url: str) -> int | None:
        """The size the trigger measured, in the shape of GPTProtoHook.video_size (no request)."""
        return self.video_bytes


def parse_event(event: Any) -> TriggerOutcome:
    """Validate a trigger event payload (it crosses a process boundary as plain JSON)."""
    if not isinstance(event, dict) or event.get("status") not in ("success", "failed", "timeout", "error"):
        raise GPTProtoError(f"Unexpected event from GPTProtoTaskTrigger: {str(event)[:200]}")
    raw = event.get("task")
    task = GenerationTask.from_dict(raw) if isinstance(raw, dict) else None
    size = event.get("video_bytes")
    video_bytes = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    return TriggerOutcome(event["status"], task, str(event.get("message") or ""), video_bytes)
