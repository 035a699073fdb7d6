"""What every GPTProto trigger shares: one hook per trigger, the shared arguments, a guarded on_kill,
and a wait that runs in a task of its own.

Triggers only poll (a restart re-running one is harmless) and their deadlines are absolute.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from airflow.triggers.base import BaseTrigger

from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.utils.kill_guard import user_stopped_task

T = TypeVar("T")
log = logging.getLogger(__name__)


async def in_own_task(wait: Coroutine[Any, Any, T]) -> T:
    """Await ``wait`` in a plain task of its own; cancelling the caller cancels it, same message.

    Why: Airflow's triggerer (3.3.2 does, 3.0.6 does not) runs each trigger's task inside
    ``greenback.ensure_portal()``, so that sync SDK calls work from ``run``; every suspension and
    resumption of such a task switches greenlets. A wait suspends several times per poll; in its
    own task it costs the portal nothing, and the trigger's task suspends once (bench/README.md,
    benchmark 1). The wait makes only async SDK calls (the connection, the key's masking: see
    ``GPTProtoHook.aget_settings``). The first cancel's message is passed on here, not by asyncio
    (Python 3.10 drops it between tasks; Airflow's ``on_kill`` check reads it), and the caller ends
    only once the wait has, so ``cleanup`` never closes a session the wait still uses.
    """
    task = asyncio.get_running_loop().create_task(wait, name="gptproto-wait")
    stopped: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError as stop:
            stopped = stopped or stop
            task.cancel(*stopped.args[:1])
    if stopped is None:
        return task.result()
    if not task.cancelled() and (error := task.exception()) is not None:
        log.debug("The wait ended with %r while it was being cancelled", error)
    raise stopped


class GPTProtoPollingTrigger(BaseTrigger):
    """Base of the GPTProto triggers; subclasses poll in ``run`` and cancel in ``cancel_remote``.

    :param gptproto_conn_id: connection to poll with; resolved asynchronously, once.
    :param poll_interval: seconds between polls.
    :param deadline: absolute unix time after which the trigger gives up (None: wait forever).
    :param cancel_on_kill: cancel the remote work when a user marks the Airflow task failed/success
        or clears it while deferred (Airflow 3.3+ calls :meth:`on_kill` then; a wait that merely
        moved to another triggerer is never cancelled).
    """

    def __init__(
        self,
        gptproto_conn_id: str = GPTProtoHook.default_conn_name,
        poll_interval: float = 10.0,
        deadline: float | None = None,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.gptproto_conn_id = gptproto_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.cancel_on_kill = cancel_on_kill
        self._hook: GPTProtoHook | None = None

    def _serialized(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        """``serialize()``'s result: this class's path, the shared arguments and the subclass's own."""
        shared = {
            "gptproto_conn_id": self.gptproto_conn_id,
            "poll_interval": self.poll_interval,
            "deadline": self.deadline,
            "cancel_on_kill": self.cancel_on_kill,
        }
        return f"{type(self).__module__}.{type(self).__qualname__}", {**kwargs, **shared}

    @property
    def hook(self) -> GPTProtoHook:
        # One attempt per poll: the poll loop owns backoff, so hook retries would only stack.
        if self._hook is None:
            self._hook = GPTProtoHook(self.gptproto_conn_id, retry_limit=1)
        return self._hook

    async def cleanup(self) -> None:
        """Release the shared HTTP session (always called by the triggerer, also on shutdown)."""
        if self._hook is not None:
            await self._hook.aclose()

    async def on_kill(self) -> None:
        """A user ended the Airflow task while deferred: stop paying for the remote work (only once
        :func:`user_stopped_task` confirms it was a user, not apache/airflow#73454)."""
        try:
            if self.cancel_on_kill and await user_stopped_task(self, self.log):
                await self.cancel_remote()
        finally:
            await self.cleanup()

    async def cancel_remote(self) -> None:
        """Cancel the remote tasks this trigger waits for; log, never raise."""
        raise NotImplementedError
