"""GPTProtoTaskSensor: wait for a task someone else created (a create-only operator, another DAG)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator, PokeReturnValue

from airflow_provider_gptproto.exceptions import GPTProtoError
from airflow_provider_gptproto.hooks.gptproto import DEFAULT_POLL_INTERVAL_SECONDS, GPTProtoHook, run_poll
from airflow_provider_gptproto.hooks.mixin import GPTProtoHookMixin, default_deferrable, positive_seconds
from airflow_provider_gptproto.links.gptproto import GPTProtoVideoLink
from airflow_provider_gptproto.models import GenerationTask
from airflow_provider_gptproto.models.poll import Pause, poll_task
from airflow_provider_gptproto.models.results import GenerateResult
from airflow_provider_gptproto.triggers.gptproto import GPTProtoTaskTrigger, parse_event
from airflow_provider_gptproto.utils.results import announce, deliver

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from airflow.sdk import Context

# Consecutive failed pokes, kept across reschedules (each is a new process) in the task state store.
POLL_FAILURES_KEY = "gptproto_poll_failures"


class GPTProtoTaskSensor(GPTProtoHookMixin, BaseSensorOperator):
    """Succeed when the GPTProto task ``gptproto_task_id`` has its video; fail like the operator if not.

    Works in ``poke``, ``reschedule`` and deferrable mode; it never cancels the task it watches
    (it does not own it). Returns a :class:`~airflow_provider_gptproto.models.results.GenerateResult`.
    A transient API error never fails a poke: the next one backs off, until ``timeout``.

    :param gptproto_task_id: the remote task id to wait for (templated), e.g.
        ``"{{ ti.xcom_pull(task_ids='generate', key='gptproto_task_id') }}"``. Required.
    :param gptproto_conn_id: the GPTProto connection (templated). Default ``"gptproto_default"``.
    :param deferrable: wait in the triggerer. Default: ``[operators] default_deferrable``.
    :param retry_on_content_policy: retry the Airflow task after a content-policy rejection. Default
        False: the same prompt is rejected again.
    :param poke_interval: seconds between status checks (also the trigger's poll interval). Default 10.
    :param timeout: seconds to wait in all before the sensor fails. Default: the ``[sensors]
        default_timeout`` config option (7 days unless set).
    :param mode: ``"poke"`` (hold the worker slot between checks) or ``"reschedule"`` (release it).
        Default ``"poke"``.
    :param kwargs: any other ``BaseSensorOperator`` argument (``soft_fail``, ``exponential_backoff``,
        ``max_wait``, ...) or ``BaseOperator`` argument.
    """

    template_fields: Sequence[str] = ("gptproto_task_id", "gptproto_conn_id")
    operator_extra_links = (GPTProtoVideoLink(),)
    # One attempt per poke: the poke loop owns the backoff, as the trigger's poll loop does.
    hook_kwargs: ClassVar[dict[str, Any]] = {"retry_limit": 1}

    def __init__(
        self,
        *,
        gptproto_task_id: str,
        gptproto_conn_id: str = GPTProtoHook.default_conn_name,
        deferrable: bool | None = None,
        retry_on_content_policy: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", DEFAULT_POLL_INTERVAL_SECONDS)
        super().__init__(**kwargs)
        self.gptproto_task_id = gptproto_task_id
        self.gptproto_conn_id = gptproto_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.retry_on_content_policy = retry_on_content_policy
        self._backoff_seconds: float | None = None  # set by a poke that failed transiently
        self._poll_failures = 0  # consecutive failed pokes in this process

    def poke(self, context: Context) -> bool | PokeReturnValue:
        hook = self.hook
        announce(context["ti"], None)
        store = context.get("task_state_store") if self.reschedule else None
        before = self._load_failures(store)
        task_id = self.gptproto_task_id
        plan = poll_task(task_id, float(self.poke_interval), time.time(), failures=before, where="")
        step = run_poll(plan, lambda _: hook.get_task(task_id), self.log.log, None, time.time)
        if isinstance(step, Pause):  # not done yet: Airflow waits, with the backoff after a failed check
            self._backoff_seconds = step.seconds if step.failures else None
            self._save_failures(store, before, step.failures)
            return False
        if step.error is not None or step.task is None:
            raise step.error or GPTProtoError(step.message)
        self._save_failures(store, before, 0)
        self._backoff_seconds = None
        return PokeReturnValue(is_done=True, xcom_value=self._deliver(context, step.task, hook.video_size))

    def _load_failures(self, store: Any) -> int:
        """Consecutive failed pokes so far; across reschedules (new processes) from the state store."""
        if store is None:
            return self._poll_failures
        raw = store.get(POLL_FAILURES_KEY)
        return raw if isinstance(raw, int) and not isinstance(raw, bool) else 0

    def _save_failures(self, store: Any, before: int, failures: int) -> None:
        self._poll_failures = failures
        if store is None or failures == before:
            return  # nothing to persist, or nothing changed: no round trip
        if failures:
            store.set(POLL_FAILURES_KEY, failures)
        else:
            store.delete(POLL_FAILURES_KEY)

    def _get_next_poke_interval(
        self, started_at: datetime | float, run_duration: Callable[[], float], poke_count: int
    ) -> float:
        """After a transient failure, the shared backoff (bounded by the time left); else as configured.

        BaseSensorOperator asks this (private, same signature on 3.1-3.3) for the pause before the
        next poke in poke mode and for the reschedule date in reschedule mode: one override serves both.
        """
        if self._backoff_seconds is None:
            return super()._get_next_poke_interval(started_at, run_duration, poke_count)
        return max(0.0, min(self._backoff_seconds, float(self.timeout) - run_duration()))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        outcome = self.poke(context)  # finished tasks need no trip through the triggerer
        if isinstance(outcome, PokeReturnValue):
            return outcome.xcom_value
        timeout = positive_seconds(self.timeout, "timeout")
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

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> GenerateResult:
        outcome = parse_event(event)
        if outcome.status == "timeout":
            raise AirflowSensorTimeout(outcome.message)
        if outcome.status == "error" or outcome.task is None:
            raise GPTProtoError(outcome.message)
        return self._deliver(context, outcome.task, outcome.video_size)

    def _deliver(
        self, context: Context, task: GenerationTask, video_size: Callable[[str], int | None]
    ) -> GenerateResult:
        """``deliver`` with this sensor's content-policy rule: the result, or the task's error."""
        return deliver(
            video_size, task, context["ti"], self.log, retry_on_content_policy=self.retry_on_content_policy
        )
