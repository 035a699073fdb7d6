"""Decide in a trigger's ``on_kill`` whether a user really ended the task.

Airflow 3.3.0-3.3.2 calls ``on_kill`` not only when a user marks a deferred task failed or success
or clears it, but also when a triggerer that was stalled past ``[triggerer]
triggerer_health_check_threshold`` wakes up and finds its triggers moved to another triggerer
(apache/airflow#73454). Cancelling remote work there cancels a wait that is still alive elsewhere,
and the retry pays again. Airflow 3.0 to 3.2 never call ``on_kill`` on triggers at all.

So before cancelling anything, ask Airflow for the task instance's state through the triggerer's
own supervisor channel (the ``GetTaskStates`` message every Airflow 3 triggerer answers, sent with
the channel's ``asend`` so the event loop never blocks). A task that is no longer deferred was
ended by a user; a task that is still deferred is being waited on by someone else, or the triggerer
is stopping. When the state cannot be read, nothing is cancelled and the log says why.

``GetTaskStates`` reports states only, not try numbers: a task cleared and deferred again before
this question is answered reads as deferred, and its remote work is then left running rather than
cancelled (never the other way round).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from airflow.triggers.base import BaseTrigger

STATE_READ_TIMEOUT_SECONDS = 10.0
DEFERRED = "deferred"


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
    try:
        from airflow.sdk.execution_time.comms import GetTaskStates

        request = GetTaskStates(
            dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=[ti.task_id], map_index=ti.map_index
        )
        response = await asyncio.wait_for(comms.asend(request), STATE_READ_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        log.warning(
            "Not cancelling: Airflow did not report the task's state in %.0f s", STATE_READ_TIMEOUT_SECONDS
        )
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
    if not isinstance(states, dict):
        return False, None
    run_states = states.get(ti.run_id)
    if not isinstance(run_states, dict):
        return False, None
    # The execution API keys mapped task instances as "<task_id>_<map_index>".
    key = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
    if key not in run_states:
        return False, None
    state = run_states[key]
    return True, None if state is None else str(getattr(state, "value", state))


def _describe(ti: Any) -> str:
    mapped = f"[{ti.map_index}]" if ti.map_index is not None and ti.map_index >= 0 else ""
    return f"task {ti.dag_id}/{ti.run_id}/{ti.task_id}{mapped} try {getattr(ti, 'try_number', '?')}"
