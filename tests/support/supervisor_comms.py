"""A stand-in for the triggerer's supervisor channel, for tests of ``utils.kill_guard`` outside a triggerer.

It answers ``GetTaskStates`` the way the execution API does (``{run_id: {task key: state}}``, mapped
task instances keyed ``<task_id>_<map_index>``) and records what it was asked. On Airflow 3.0 a
connection lookup also goes through this channel once it is set; it is answered from the
``AIRFLOW_CONN_*`` environment, as the real supervisor would from its own lookup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest


def task_instance(map_index: int = -1, try_number: int = 1) -> SimpleNamespace:
    """The attributes of a triggerer's task instance that the guard reads."""
    return SimpleNamespace(
        dag_id="d", run_id="r", task_id="generate", map_index=map_index, try_number=try_number
    )


@dataclass
class FakeComms:
    """``asend`` answers with ``state`` for the asked task instance (or raises / hangs)."""

    state: str | None = "deferred"
    missing: bool = False
    error: BaseException | None = None
    hang: bool = False
    asked: list[Any] = field(default_factory=list)

    async def asend(self, msg: Any) -> Any:
        from airflow.sdk.execution_time.comms import TaskStatesResult

        self.asked.append(msg)
        if self.error is not None:
            raise self.error
        if self.hang:
            await asyncio.sleep(3600)
        key = msg.task_ids[0] if msg.map_index < 0 else f"{msg.task_ids[0]}_{msg.map_index}"
        states = {} if self.missing else {key: self.state}
        return TaskStatesResult(task_states={msg.run_ids[0]: states})

    def send(self, msg: Any) -> Any:
        """Airflow 3.0's synchronous connection lookup (``GetConnection``), from the environment.

        The secret masking that follows it (``MaskSecret``) gets no reply, as from the supervisor.
        """
        from airflow.sdk.execution_time.comms import ConnectionResult, ErrorResponse, GetConnection
        from airflow.secrets.environment_variables import EnvironmentVariablesBackend

        if type(msg).__name__ == "MaskSecret":
            return None
        if not isinstance(msg, GetConnection):
            raise NotImplementedError(f"FakeComms does not answer {type(msg).__name__}")
        conn = EnvironmentVariablesBackend().get_connection(msg.conn_id)
        if conn is None:
            return ErrorResponse(error="CONNECTION_NOT_FOUND", detail={"conn_id": msg.conn_id})
        return ConnectionResult(
            conn_id=msg.conn_id,
            conn_type=conn.conn_type,
            host=conn.host,
            schema=conn.schema,
            login=conn.login,
            password=conn.password,
            port=conn.port,
            extra=conn.extra,
        )


@contextmanager
def supervisor_comms(monkeypatch: pytest.MonkeyPatch, comms: Any) -> Iterator[Any]:
    """Install ``comms`` where the Task SDK keeps the triggerer's channel (None: no channel)."""
    from airflow.sdk.execution_time import task_runner

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    yield comms
