"""GPTProtoTaskSensor: wait for a task someone else created (a create-only operator, another DAG)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_gptproto.exceptions import GPTProtoError
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.links.gptproto import GPTProtoVideoLink
from airflow_provider_gptproto.triggers.gptproto import GPTProtoTaskTrigger, parse_event

if TYPE_CHECKING:
    from airflow.sdk import Context
from airflow_provider_gptproto.utils.results import announce, deliver


class GPTProtoTaskSensor(BaseSensorOperator):
    """Succeed when the GPTProto task ``gptproto_task_id`` has its video; fail like the operator if not.

    Works in ``poke`` and ``reschedule`` modes and, with ``deferrable=True``, waits in the triggerer
    using the same trigger as the operator. It never cancels the task it watches: it does not own it.
    The return value (XCom) is the finished task's dict.
    """

    template_fields: Sequence[str] = ("gptproto_task_id", "gptproto_conn_id")
    operator_extra_links = (GPTProtoVideoLink(),)

    def __init__(
        self,
        *,
        gptproto_task_id: str,
        gptproto_conn_id: str = GPTProtoHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        retry_on_content_policy: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 10.0)
        super().__init__(**kwargs)
        self.gptproto_task_id = gptproto_task_id
        self.gptproto_conn_id = gptproto_conn_id
        self.deferrable = deferrable
        self.retry_on_content_policy = retry_on_content_policy

    @cached_property
    def hook(self) -> GPTProtoHook:
        """One hook per execution (every poke of it reuses the session); closed when it ends."""
        return GPTProtoHook(self.gptproto_conn_id)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        hook = self.hook
        announce(context["ti"], None)
        task = hook.get_task(self.gptproto_task_id)
        if not task.is_terminal:
            self.log.info("GPTProto task %s is %s", task.task_id, task.status.value)
            return False
        result = deliver(
            hook.video_size,
            task,
            context["ti"],
            self.log,
            retry_on_content_policy=self.retry_on_content_policy,
        )
        return PokeReturnValue(is_done=True, xcom_value=result)

    def execute(self, context: Context) -> Any:
        try:
            return self._execute(context)
        finally:
            self.hook.close()

    def _execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        outcome = self.poke(context)  # finished tasks need no trip through the triggerer
        if isinstance(outcome, PokeReturnValue):
            return outcome.xcom_value
        timeout = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)
        self.defer(
            trigger=GPTProtoTaskTrigger(
                gptproto_task_id=self.gptproto_task_id,
                gptproto_conn_id=self.gptproto_conn_id,
                poll_interval=float(self.poke_interval),
                deadline=time.time() + timeout,
                cancel_on_kill=False,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        outcome = parse_event(event)
        if outcome.status == "timeout":
            raise AirflowSensorTimeout(outcome.message)
        if outcome.status == "error" or outcome.task is None:
            raise GPTProtoError(outcome.message)
        return deliver(
            outcome.video_size,
            outcome.task,
            context["ti"],
            self.log,
            retry_on_content_policy=self.retry_on_content_policy,
        )
