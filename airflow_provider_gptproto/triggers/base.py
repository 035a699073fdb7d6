"""What every GPTProto trigger shares: one hook per trigger, the shared arguments, a guarded on_kill.

Triggers only poll (a restart re-running one is harmless) and their deadlines are absolute.
"""

from __future__ import annotations

from typing import Any

from airflow.triggers.base import BaseTrigger

from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.utils.kill_guard import user_stopped_task


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
