"""Benchmark 2's baseline: Airflow's own worker cost for a deferrable task that does nothing.

The same number of mapped tasks, in the same pool, each deferring once on a core trigger and
resuming with nothing to do. Kept in its own file, without the provider, so its worker phases pay
only Airflow's task start-up, parse and reporting: what any deferrable operator pays at least.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import DAG, BaseOperator

VIDEOS = int(os.environ.get("BENCH_WORKER_VIDEOS", "20"))
POOL = os.environ.get("BENCH_WORKER_POOL", "default_pool")
WAIT = timedelta(seconds=float(os.environ.get("BENCH_WORKER_FLOOR_WAIT", "10")))


class DeferOnceOperator(BaseOperator):
    """Defers once, then succeeds: two worker phases with no work of their own."""

    def __init__(self, *, item: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.item = item

    def execute(self, context: Any) -> None:
        self.defer(trigger=TimeDeltaTrigger(WAIT), method_name="execute_complete")

    def execute_complete(self, context: Any, event: Any = None) -> None:
        return None


with DAG(
    dag_id="bench_worker_slots_floor",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    max_active_tasks=VIDEOS,
    tags=["bench"],
):
    DeferOnceOperator.partial(task_id="generate", pool=POOL).expand(item=list(range(VIDEOS)))
