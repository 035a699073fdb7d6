"""Remember the remote task across Airflow retries, so a retry never pays for a second video.

Airflow 3.3 gives each task instance a ``task_state_store`` that survives retries (scoped to the
DAG run, task and map index). We follow ResumableJobMixin's contract with it: persist the remote id
before waiting, and on the next try reattach, return, or resubmit according to the remote status.
The mixin itself only covers synchronous polling, so the operator applies the contract itself on
both its sync and deferrable paths. Older Airflow 3.x has no such store: there every try starts
afresh (documented in README), and the id is still pushed to XCom for manual reconciliation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

TASK_KEY = "gptproto_task"
CREATE_KEY = "gptproto_create_started"


@dataclass(frozen=True)
class RemoteTaskRecord:
    """What a later try needs: which remote task, and the absolute deadline it runs under."""

    task_id: str
    deadline: float | None


class TaskState:
    """Thin wrapper over ``context["task_state_store"]`` that degrades to no-ops when it is absent."""

    def __init__(self, context: Any) -> None:
        self._store = context.get("task_state_store") if hasattr(context, "get") else None

    @property
    def durable(self) -> bool:
        return self._store is not None

    def load(self) -> RemoteTaskRecord | None:
        raw = self._store.get(TASK_KEY) if self._store is not None else None
        if isinstance(raw, dict) and isinstance(raw.get("task_id"), str):
            deadline = raw.get("deadline")
            return RemoteTaskRecord(raw["task_id"], float(deadline) if deadline is not None else None)
        return None

    def save(self, record: RemoteTaskRecord) -> None:
        if self._store is not None:
            self._store.set(TASK_KEY, {"task_id": record.task_id, "deadline": record.deadline})
            self._store.delete(CREATE_KEY)

    def mark_create_started(self, model: str) -> None:
        """Written just before a create, so a try that dies mid-create leaves a trace to reconcile."""
        if self._store is not None:
            self._store.set(CREATE_KEY, {"at": time.time(), "model": model})

    def create_started(self) -> tuple[float, str] | None:
        raw = self._store.get(CREATE_KEY) if self._store is not None else None
        if isinstance(raw, dict) and isinstance(raw.get("at"), (int, float)):
            return float(raw["at"]), str(raw.get("model") or "")
        return None

    def clear(self) -> None:
        """Forget the remote task once its result is delivered, so clearing the task regenerates."""
        if self._store is not None:
            self._store.delete(TASK_KEY)
            self._store.delete(CREATE_KEY)
