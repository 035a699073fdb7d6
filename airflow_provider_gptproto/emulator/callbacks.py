"""Webhooks for tasks created with ``callback_url``, as upstream sends them.

Upstream POSTs the task object (shape B) on every status change (queued, running,
succeeded, failed, expired; not cancelled) and retries the terminal ones 3 times when
they are not acknowledged (2xx) within 5 s. Since statuses here are computed from the
clock, a small loop notices the transitions; each task's webhooks go out in order, on
their own asyncio task, so one slow receiver does not hold up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections import deque
from typing import Any

from .dialects import RenderContext, task_object
from .state import EmulatorState
from .store import Task

TERMINAL_RETRIES = 3
SCAN_INTERVAL = 0.05


def passed_statuses(task: Task, now: float) -> list[tuple[str, float]]:
    """The webhook-worthy statuses the task has reached by ``now``, with when it reached them."""
    reached = [("queued", task.created_at)]
    if task.cancelled_at is not None:
        return reached
    if now >= task.started_at:
        reached.append(("running", task.started_at))
    if now >= task.finished_at:
        reached.append((task.outcome, task.finished_at))
    return reached


def _post(url: str, body: bytes, timeout: float) -> tuple[int | None, str | None]:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "gptproto-emulator"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), None
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


class CallbackSender:
    """Watches tasks with a ``callback_url`` and delivers their status changes."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=10000)
        self.sent = 0
        self.failed = 0
        self._busy: set[str] = set()
        self._jobs: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        for job in [self._loop_task, *self._jobs]:
            if job is not None:
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job

    def reset(self) -> None:
        self.deliveries.clear()
        self.sent = self.failed = 0

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SCAN_INTERVAL)
            self.scan(time.time())

    def scan(self, now: float) -> None:
        for task in list(self.state.store.tasks.values()):
            if not task.request.get("callback_url") or task.id in self._busy:
                continue
            pending = [
                (status, at) for status, at in passed_statuses(task, now) if status not in task.notified
            ]
            if pending:
                self._busy.add(task.id)
                job = asyncio.get_running_loop().create_task(self._deliver(task, pending))
                self._jobs.add(job)
                job.add_done_callback(self._jobs.discard)

    async def _deliver(self, task: Task, pending: list[tuple[str, float]]) -> None:
        try:
            for status, at in pending:
                await self._deliver_one(task, status, at)
                task.notified.append(status)
            self.state.store.save()
        finally:
            self._busy.discard(task.id)

    async def _deliver_one(self, task: Task, status: str, at: float) -> None:
        config = self.state.config
        ctx = RenderContext(config, task.base_url, self.state.store.signing_secret, at)
        body = json.dumps(task_object(task, ctx, status=status)).encode()
        url = str(task.request["callback_url"])
        attempts = 1 + (TERMINAL_RETRIES if status in ("succeeded", "failed", "expired") else 0)
        for attempt in range(1, attempts + 1):
            code, error = await asyncio.to_thread(_post, url, body, config.callback_timeout_seconds)
            ok = code is not None and 200 <= code < 300
            self.deliveries.append(
                {
                    "ts": round(time.time(), 6),
                    "task_id": task.id,
                    "status": status,
                    "url": url,
                    "attempt": attempt,
                    "ok": ok,
                    "http_status": code,
                    "error": error,
                }
            )
            if ok:
                self.sent += 1
                return
            self.failed += 1
            if attempt < attempts:
                await asyncio.sleep(config.callback_retry_seconds)
