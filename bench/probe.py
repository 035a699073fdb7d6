"""Operators and a probe trigger for measuring inside a real ``airflow triggerer`` (benchmark 1).

``TriggerStartedPoller`` starts its task directly in the triggerer with a GPTProtoTaskTrigger
(``start_from_trigger``: no worker run, so 1,000 deferred tasks cost no 1,000 task processes).
``LoopProbeTrigger`` runs on the same event loop as those triggers for a fixed window and writes
what it saw (loop lag, this process's CPU, RSS and sockets, polls counted by the JSON server) to
a JSON file, because nothing else can see inside the triggerer's trigger-runner process.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger, StartTriggerArgs, TriggerEvent

GPTPROTO_TRIGGER = "airflow_provider_gptproto.triggers.gptproto.GPTProtoTaskTrigger"
PROBE_TRIGGER = "bench.probe.LoopProbeTrigger"
TICK_SECONDS = 0.05
# start_trigger_args are class attributes (mapped tasks never call __init__ at parse time), so the
# benchmark passes its settings through the environment every Airflow component gets.
CONN_ID = os.environ.get("BENCH_TRIGGERER_CONN_ID", "gptproto_bench")
POLL_INTERVAL = float(os.environ.get("BENCH_TRIGGERER_INTERVAL", "5"))
POLLERS = int(os.environ.get("BENCH_TRIGGERER_N", "1000"))
PROBE_RESULT = os.environ.get("BENCH_PROBE_RESULT", "/tmp/bench-probe.json")
PROBE_STATS_URL = os.environ.get("BENCH_PROBE_STATS_URL", "http://127.0.0.1:9/_stats")
PROBE_WINDOW = float(os.environ.get("BENCH_PROBE_WINDOW", "60"))
# "idle": the same tasks born deferred on Airflow's own DateTimeTrigger for 2099 instead, which never
# does anything: what the triggerer costs with no polling at all (Airflow's own share of lag and RSS).
KIND = os.environ.get("BENCH_TRIGGERER_KIND", "gptproto")
# "frozen": the gptproto pollers, and the probe moves every object alive once they are loaded into
# the collector's permanent generation (gc.freeze, as Airflow's DAG processor and executors do before
# they fork): full collections then scan only what the waits allocate from there on.
FREEZE = KIND == "frozen"
IDLE_TRIGGER = "airflow.providers.standard.triggers.temporal.DateTimeTrigger"


class TriggerStartedPoller(BaseOperator):
    """A task born deferred on a GPTProtoTaskTrigger polling ``bench-<map index>`` (never ends), or
    with ``BENCH_TRIGGERER_KIND=idle`` on an idle DateTimeTrigger."""

    template_fields = ("gptproto_task_id",)
    start_from_trigger = True
    start_trigger_args = (
        StartTriggerArgs(
            trigger_cls=IDLE_TRIGGER,
            trigger_kwargs={"moment": datetime(2099, 1, 1, tzinfo=timezone.utc)},
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        )
        if KIND == "idle"
        else StartTriggerArgs(
            trigger_cls=GPTPROTO_TRIGGER,
            trigger_kwargs={
                "gptproto_task_id": "bench-{{ ti.map_index }}",
                "gptproto_conn_id": CONN_ID,
                "poll_interval": POLL_INTERVAL,
                "deadline": None,
                "cancel_on_kill": False,
            },
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        )
    )

    def __init__(self, *, gptproto_task_id: str = "bench", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gptproto_task_id = gptproto_task_id

    def execute_complete(self, context: Any, event: Any = None) -> None:
        """Only reached if a poller ever ends (it should not: its task stays running)."""
        return None


class ProbeOperator(BaseOperator):
    """A task born deferred on a LoopProbeTrigger; it succeeds once the probe has reported."""

    start_from_trigger = True
    start_trigger_args = StartTriggerArgs(
        trigger_cls=PROBE_TRIGGER,
        trigger_kwargs={"result_path": PROBE_RESULT, "stats_url": PROBE_STATS_URL, "window": PROBE_WINDOW},
        next_method="execute_complete",
        next_kwargs=None,
        timeout=None,
    )

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        return event


def _socket_fds() -> int:
    """Network (non-Unix) socket fds of this process: the triggers' HTTP connections."""
    from bench.common import socket_fds

    return socket_fds("self")


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class LoopProbeTrigger(BaseTrigger):
    """Measure the triggerer's event loop for ``window`` seconds, write a JSON report, then fire."""

    def __init__(self, result_path: str, stats_url: str, window: float, settle: float = 2.0) -> None:
        super().__init__()
        self.result_path = result_path
        self.stats_url = stats_url
        self.window = float(window)
        self.settle = float(settle)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            PROBE_TRIGGER,
            {
                "result_path": self.result_path,
                "stats_url": self.stats_url,
                "window": self.window,
                "settle": self.settle,
            },
        )

    async def _stats(self) -> dict[str, Any]:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.get(self.stats_url) as resp:
            data: dict[str, Any] = await resp.json()
            return data

    async def run(self) -> AsyncIterator[TriggerEvent]:
        loop = asyncio.get_running_loop()
        if FREEZE:
            gc.collect()
            gc.freeze()
        await asyncio.sleep(self.settle)
        before = await self._stats()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        t0, wall0 = time.time(), loop.time()
        lags: list[float] = []
        sockets: list[int] = []
        next_sample = wall0
        from bench.common import GcPauses  # not at import: the DAG processor parses this module

        with GcPauses() as pauses:
            while loop.time() - wall0 < self.window:
                started = loop.time()
                await asyncio.sleep(TICK_SECONDS)
                lags.append(loop.time() - started - TICK_SECONDS)
                if loop.time() >= next_sample:
                    sockets.append(_socket_fds())
                    next_sample += 1.0
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        t1, wall1 = time.time(), loop.time()
        after = await self._stats()
        report = {
            "pid": os.getpid(),
            "window_start": t0,
            "window_end": t1,
            "window_seconds": wall1 - wall0,
            "polls": after["requests"]["task_get"] - before["requests"]["task_get"],
            "cpu_seconds": (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime),
            "server_cpu_seconds": after["cpu_seconds"] - before["cpu_seconds"],
            "lag_ms": {
                "p50": _percentile(lags, 50) * 1000,
                "p99": _percentile(lags, 99) * 1000,
                "max": max(lags, default=float("nan")) * 1000,
                "samples": len(lags),
            },
            "sockets_max": max(sockets, default=0),
            "sockets_mean": sum(sockets) / max(1, len(sockets)),
            "rss": _rss(),
            "peak_rss": usage1.ru_maxrss * 1024,
            "tasks_on_loop": len(asyncio.all_tasks()),
            "gc": pauses.report(),
            "gc_objects": len(gc.get_objects()),
            "gc_frozen": gc.get_freeze_count(),
        }
        # "{pid}" in the path gives each triggerer process its own report (the cluster benchmark).
        path = Path(self.result_path.replace("{pid}", str(os.getpid())))
        await asyncio.to_thread(path.write_text, json.dumps(report))
        yield TriggerEvent({"ok": True})
