"""Task records and their lifecycle.

A task's status is computed from wall-clock timestamps rather than advanced by timers,
so nothing has to run in the background and a restart from the state file carries on
where it left off: ``queued`` for ``queue_seconds``, ``running`` for ``run_seconds``,
then the scripted outcome. Cancelling a queued task freezes it as ``cancelled``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import secrets
import string
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ApiError
from .validation import ListQuery, TaskRequest

TERMINAL = ("succeeded", "failed", "expired")
LIST_WINDOW_SECONDS = 7 * 24 * 3600


@dataclass
class Task:
    """One generation task: its request, timing and scripted outcome."""

    id: str
    request: dict[str, Any]
    created_at: float
    queue_seconds: float
    run_seconds: float
    seed: int
    outcome: str = "succeeded"
    failure_code: str | None = None
    failure_message: str | None = None
    cancelled_at: float | None = None
    links_expired: bool = False  # links name an expiry before the task finished ([[link:expired]])
    first_frame: str | None = None  # PNG the clip starts from (the first_frame image), see frames.py
    video: str | None = None  # a hostile video link ([[video:redirect-metadata|endless|html]])
    base_url: str = ""  # where the client reached us, for links in webhook bodies
    notified: list[str] = field(default_factory=list)  # statuses already delivered to callback_url

    @property
    def spec(self) -> TaskRequest:
        return TaskRequest(**self.request)

    @property
    def started_at(self) -> float:
        return self.created_at + self.queue_seconds

    @property
    def finished_at(self) -> float:
        return self.started_at + self.run_seconds

    def status(self, now: float | None = None) -> str:
        """Upstream status word at ``now``."""
        now = time.time() if now is None else now
        if self.cancelled_at is not None:
            return "cancelled"
        if now < self.started_at:
            return "queued"
        if now < self.finished_at:
            return "running"
        return self.outcome

    def advance(self, now: float, to_end: bool = False) -> bool:
        """Move to the next phase now (or straight to the outcome): the clock tests control.

        ``created_at`` stays true; the phase that is under way is cut short to end at ``now``.
        Returns False for a task already finished or cancelled.
        """
        status = self.status(now)
        if status == "queued":
            self.queue_seconds = max(0.0, now - self.created_at)
            if to_end:
                self.run_seconds = 0.0
        elif status == "running":
            self.run_seconds = max(0.0, now - self.started_at)
        else:
            return False
        return True

    def updated_at(self, now: float | None = None) -> float:
        """When the status last changed."""
        status = self.status(now)
        if status == "cancelled":
            return self.cancelled_at or self.created_at
        if status == "queued":
            return self.created_at
        return self.started_at if status == "running" else self.finished_at


def new_task_id(dialect: str, existing: Iterable[str]) -> str:
    """An id in the style of the dialect's service, unique within the store."""
    taken = set(existing)
    while True:
        if dialect == "ark":
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            candidate = f"cgt-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{suffix}"
        elif dialect == "predictions":
            candidate = secrets.token_hex(16)
        else:
            candidate = f"task_{secrets.token_hex(12)}"
        if candidate not in taken:
            return candidate


class TaskStore:
    """In-memory tasks, optionally persisted to a JSON state file after every change."""

    def __init__(self, state_file: str | None = None) -> None:
        self.tasks: dict[str, Task] = {}
        self.state_file = Path(state_file) if state_file else None
        self.signing_secret = secrets.token_hex(32)
        self.created_count = 0
        # The port this state was last served on: a restart listens there again (see server.py).
        self.port: int | None = None

    # -- persistence -------------------------------------------------------------------------
    def load(self) -> None:
        """Restore tasks, the port and the URL signing secret, so old links stay valid after a restart."""
        if not self.state_file or not self.state_file.exists():
            return
        data = json.loads(self.state_file.read_text(encoding="utf-8"))
        self.signing_secret = data.get("signing_secret", self.signing_secret)
        self.port = data.get("port")
        fields = {f.name for f in dataclasses.fields(Task)}
        for raw in data.get("tasks", []):
            task = Task(**{key: value for key, value in raw.items() if key in fields})
            self.tasks[task.id] = task

    def save(self) -> None:
        """Atomically replace the state file (write a temp file, fsync, rename)."""
        if not self.state_file:
            return
        payload = {
            "version": 1,
            "signing_secret": self.signing_secret,
            "port": self.port,
            "tasks": [dataclasses.asdict(task) for task in self.tasks.values()],
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.state_file.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.state_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def record_port(self, port: int) -> None:
        """Remember the port now served, on disk at once, so even a crash restarts at the same URL."""
        self.port = port
        self.save()

    # -- operations --------------------------------------------------------------------------
    def add(self, task: Task) -> None:
        self.tasks[task.id] = task
        self.created_count += 1
        self.save()

    def get(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise ApiError(
                "not_found",
                f"Task not found: the task `{task_id}` does not exist",
                "task_id",
                ark_message=f"The specified task `{task_id}` is not found.",
            )
        return task

    def queued_count(self, now: float | None = None) -> int:
        return sum(1 for task in self.tasks.values() if task.status(now) == "queued")

    def cancel_or_delete(self, task_id: str) -> str:
        """docs/api-contract.md: queued -> cancelled; terminal -> deleted; running/cancelled refused."""
        task = self.get(task_id)
        status = task.status()
        if status == "queued":
            task.cancelled_at = time.time()
            self.save()
            return "cancelled"
        if status in TERMINAL:
            del self.tasks[task_id]
            self.save()
            return "deleted"
        raise ApiError(
            "invalid_state",
            f"Invalid request parameters: task `{task_id}` is {status} and cannot be cancelled or deleted",
            "task_id",
        )

    def query(self, query: ListQuery, now: float | None = None) -> tuple[list[Task], int]:
        """Filter (last 7 days only, like upstream), newest first, then page."""
        now = time.time() if now is None else now
        wanted_ids = set(query.task_ids)
        matches = [
            task
            for task in self.tasks.values()
            if task.created_at >= now - LIST_WINDOW_SECONDS
            and (not query.status or task.status(now) == query.status)
            and (not wanted_ids or task.id in wanted_ids)
            and (not query.model or task.request["model"] == query.model)
            and (not query.service_tier or task.request["service_tier"] == query.service_tier)
        ]
        matches.sort(key=lambda task: task.created_at, reverse=True)
        start = (query.page_num - 1) * query.page_size
        return matches[start : start + query.page_size], len(matches)

    def advance(self, task_ids: Iterable[str] | None, to_end: bool = False) -> list[dict[str, str]]:
        """Advance the named tasks (every unfinished one when None); unknown ids raise not_found."""
        now = time.time()
        tasks = [self.get(task_id) for task_id in task_ids] if task_ids is not None else self.tasks.values()
        moved: list[dict[str, str]] = []
        for task in list(tasks):
            before = task.status(now)
            if task.advance(now, to_end):
                moved.append({"id": task.id, "from": before, "to": task.status(now)})
        if moved:
            self.save()
        return moved

    def clear(self) -> None:
        self.tasks.clear()
        self.created_count = 0
        self.save()


def make_task(
    task_id: str,
    spec: TaskRequest,
    queue_seconds: float,
    run_seconds: float,
    outcome: str,
    failure: tuple[str | None, str | None],
    base_url: str = "",
    links_expired: bool = False,
    first_frame: str | None = None,
    video: str | None = None,
) -> Task:
    """A new task; seed -1 ("random") becomes a concrete seed, reported back like upstream."""
    seed = spec.seed if spec.seed != -1 else random.randint(1, 2147483647)
    return Task(
        id=task_id,
        request=dataclasses.asdict(spec),
        created_at=time.time(),
        queue_seconds=queue_seconds,
        run_seconds=run_seconds,
        seed=seed,
        outcome=outcome,
        failure_code=failure[0],
        failure_message=failure[1],
        base_url=base_url,
        links_expired=links_expired,
        first_frame=first_frame,
        video=video,
    )
