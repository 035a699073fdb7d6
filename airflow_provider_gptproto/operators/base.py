"""GPTProtoBaseOperator: the setup every GPTProto operator shares, written once."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, NoReturn

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook, run_poll
from airflow_provider_gptproto.hooks.mixin import GPTProtoHookMixin, default_deferrable, positive_seconds
from airflow_provider_gptproto.models.poll import BatchWait
from airflow_provider_gptproto.triggers.batch import BatchOutcome, GPTProtoBatchTrigger


class GPTProtoBaseOperator(GPTProtoHookMixin, BaseOperator):
    """Connection id, one hook per execution, the deferrable default and time budgets in seconds.

    Subclasses keep their own documented keyword arguments and pass these on.

    :param gptproto_conn_id: the GPTProto connection. Default ``"gptproto_default"``.
    :param deferrable: wait in the triggerer. Default None: ``[operators] default_deferrable``.
    :param poll_interval: seconds or a ``timedelta`` (None: the operator does not poll).
    :param timeout: seconds or a ``timedelta`` (None: the operator has no budget).
    :raises ValueError: ``poll_interval`` or ``timeout`` is not positive (the message names it).
    """

    poll_interval: float
    timeout: float
    cancel_on_kill: bool

    def __init__(
        self,
        *,
        gptproto_conn_id: str = GPTProtoHook.default_conn_name,
        deferrable: bool | None = None,
        poll_interval: timedelta | float | None = None,
        timeout: timedelta | float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gptproto_conn_id = gptproto_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        if poll_interval is not None:
            self.poll_interval = positive_seconds(poll_interval, "poll_interval")
        if timeout is not None:
            self.timeout = positive_seconds(timeout, "timeout")

    # ------------------------------------------------------------------ waiting on many tasks at once
    def _defer_batch(
        self, watch: dict[str, float], deadline: float, min_finished: int, max_wait_ready: float
    ) -> NoReturn:
        """Wait in one batch trigger until enough of ``watch`` (remote id -> its deadline) ended."""
        self.defer(
            trigger=GPTProtoBatchTrigger(
                watch,
                self.gptproto_conn_id,
                self.poll_interval,
                deadline=deadline,
                min_finished=min_finished,
                max_wait_ready=max_wait_ready,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
        )

    def _poll_batch(
        self, watch: dict[str, float], deadline: float, min_finished: int, max_wait_ready: float
    ) -> BatchOutcome:
        """The batch trigger's wait (:meth:`_defer_batch`), run in the worker."""
        waiting = BatchWait(watch, self.poll_interval, deadline, min_finished, max_wait_ready)
        read = lambda check: self.hook.get_tasks(list(check.ids))  # noqa: E731
        status, message = run_poll(waiting.plan(time.time()), read, self.log.log, time.sleep, time.time)
        return BatchOutcome(str(status), waiting.done, waiting.timed_out, waiting.missing, str(message))
