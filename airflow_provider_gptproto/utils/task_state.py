"""Remember the remote task across Airflow retries, so a retry never pays for a second video.

Airflow 3.3's ``task_state_store`` survives retries; the operator follows ResumableJobMixin's contract
with it (persist the id before waiting; reattach, return or resubmit on the next try) on both its
paths. Older Airflow has no store: every try starts afresh (docs/failure-handling.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from airflow.sdk import Context

TASK_KEY = "gptproto_task"


class KeyValueStore(Protocol):
    """What we use of ``context["task_state_store"]`` (typed on Airflow 3.3+, absent before)."""

    def get(self, key: str) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...
    def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class RemoteTaskRecord:
    """What a later try needs: which remote task, and the absolute deadline it runs under."""

    task_id: str
    deadline: float | None


class TaskState:
    """``context["task_state_store"]``, or no-ops without one. One key holds the remote task's record
    or, while a create is in flight, a ``create_started`` marker. Each store call is a round trip to
    the API server, so a try reads the key once.
    """

    def __init__(self, context: Context, key: str = TASK_KEY) -> None:
        store = context.get("task_state_store") if hasattr(context, "get") else None
        self.key = key  # one per take when there are several
        self._store = cast("KeyValueStore | None", store)
        self._raw: Any = None
        self._loaded = False

    @property
    def durable(self) -> bool:
        return self._store is not None

    def _value(self) -> Any:
        if not self._loaded and self._store is not None:
            self._raw = self._store.get(self.key)
            self._loaded = True
        return self._raw

    def load(self) -> RemoteTaskRecord | None:
        raw = self._value()
        if isinstance(raw, dict) and isinstance(raw.get("task_id"), str):
            deadline = raw.get("deadline")
            return RemoteTaskRecord(raw["task_id"], float(deadline) if deadline is not None else None)
        return None

    def create_started(self) -> tuple[float, str] | None:
        """The marker of an earlier try's create that never recorded its id, if any."""
        raw = self._value()
        if isinstance(raw, dict) and isinstance(raw.get("create_started"), (int, float)):
            return float(raw["create_started"]), str(raw.get("model") or "")
        return None

    def mark_create_started(self, model: str) -> None:
        """Written just before a create, so a try that dies mid-create leaves a trace to reconcile."""
        self._write({"create_started": time.time(), "model": model})

    def save(self, record: RemoteTaskRecord) -> None:
        self._write({"task_id": record.task_id, "deadline": record.deadline})

    def clear(self) -> None:
        """Forget the remote task once its result is delivered, so clearing the task regenerates."""
        if self._store is not None:
            self._store.delete(self.key)
        self._raw, self._loaded = None, True

    def _write(self, value: dict[str, Any]) -> None:
        if self._store is not None:
            self._store.set(self.key, value)
        self._raw, self._loaded = value, True
