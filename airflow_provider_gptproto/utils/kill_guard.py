"""Decide in a trigger's ``on_kill`` whether a user really ended the task.

Airflow 3.3.0-3.3.2 also calls ``on_kill`` when a stalled triggerer finds its waits moved to another
(apache/airflow#73454; docs/production.md). So ask Airflow for the task's state over the triggerer's
supervisor channel (``GetTaskStates``, async): only a task no longer deferred was ended by a user.
Unreadable state, or a task cleared and deferred again meanwhile, leaves the remote work running.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from airflow.triggers.base import BaseTrigger

DEFERRED = "deferred"
# Share of ``[triggerer] on_kill_timeout`` the state read may take (the rest is for the cancel): a
# triggerer's first read builds its execution API, which took 17 s on a loaded 2-core machine.
STATE_READ_SHARE = 0.8


def state_read_timeout() -> float:
    """Seconds to wait for Airflow's answer: 80 % of the triggerer's ``on_kill_timeout``."""
    from airflow.configuration import conf

    return max(1.0, STATE_READ_SHARE * conf.getfloat("triggerer", "on_kill_timeout", fallback=30.0))


async def user_stopped_task(trigger: BaseTrigger, log: logging.Logger | Any) -> bool:
    """True only when Airflow confirms the trigger's task instance is no longer deferred.

    :param trigger: the trigger whose ``on_kill`` is running; its ``task_instance`` (set by the
        triggerer) names the task instance to look up.
    :param log: where to say why the answer is False (a logger or the trigger's ``self.log``).
    """
    ti = getattr(trigger, "task_instance", None)
    if ti is None:
        log.warning("Not cancelling: this trigger has no task instance to check")
        return False
    comms = _supervisor_comms()
    if comms is None:
        log.warning("Not cancelling: no channel to Airflow to read the task's state (not in a triggerer)")
        return False
    timeout = state_read_timeout()
    try:
        from airflow.sdk.execution_time.comms import GetTaskStates

        request = GetTaskStates(
            dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=[ti.task_id], map_index=ti.map_index
        )
        response = await asyncio.wait_for(comms.asend(request), timeout)
    except asyncio.TimeoutError:
        log.warning("Not cancelling: Airflow did not report the task's state in %.0f s", timeout)
        return False
    except Exception as exc:  # any failure to read the state means "do not cancel"; the reason is logged
        log.warning(
            "Not cancelling: could not read the task's state from Airflow (%s: %s)", type(exc).__name__, exc
        )
        return False
    found, state = _state_of(response, ti)
    if not found:
        log.warning("Not cancelling: Airflow did not report a state for %s", _describe(ti))
        return False
    if state == DEFERRED:
        log.info(
            "Not cancelling: %s is still deferred, so its wait moved to another triggerer or this "
            "triggerer is stopping",
            _describe(ti),
        )
        return False
    log.info("%s is now %s: a user ended it", _describe(ti), state)
    return True


def _supervisor_comms() -> Any | None:
    """The triggerer runner's channel to its supervisor, if this process has one with ``asend``."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:
        return None
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    return comms if callable(getattr(comms, "asend", None)) else None


def _state_of(response: Any, ti: Any) -> tuple[bool, str | None]:
    """(found, state) for ``ti`` in a ``TaskStatesResult``: ``{run_id: {task key: state}}``."""
    states = getattr(response, "task_states", None)
    run_states = states.get(ti.run_id) if isinstance(states, dict) else None
    # The execution API keys mapped task instances as "<task_id>_<map_index>".
    key = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
    if not isinstance(run_states, dict) or key not in run_states:
        return False, None
    state = run_states[key]
    return True, None if state is None else str(getattr(state, "value", state))


def _describe(ti: Any) -> str:
    mapped = f"[{ti.map_index}]" if ti.map_index is not None and ti.map_index >= 0 else ""
    return f"task {ti.dag_id}/{ti.run_id}/{ti.task_id}{mapped} try {getattr(ti, 'try_number', '?')}"
