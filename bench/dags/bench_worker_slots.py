"""Benchmark 2: the same N mapped videos, generated in deferrable mode and in sync mode."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_gptproto.operators.gptproto import GPTProtoGenerateVideoOperator

VIDEOS = int(os.environ.get("BENCH_WORKER_VIDEOS", "20"))
POLL_INTERVAL = float(os.environ.get("BENCH_WORKER_POLL", "5"))
# Both modes share one pool, so at most this many task processes run at once on this small machine.
POOL = os.environ.get("BENCH_WORKER_POOL", "default_pool")

with DAG(
    dag_id="bench_worker_slots_warmup",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["bench"],
):
    # Same code paths (task start-up, provider import, triggerer, resume) against a fast emulator,
    # so the measured runs do not pay the stack's first-use costs.
    GPTProtoGenerateVideoOperator.partial(
        task_id="generate", pool=POOL, deferrable=True, poll_interval=1, gptproto_conn_id="gptproto_warmup"
    ).expand(prompt=[f"bench warm-up video {i}" for i in range(5)])

for mode, deferrable in (("deferrable", True), ("sync", False)):
    with DAG(
        dag_id=f"bench_worker_slots_{mode}",
        start_date=datetime(2026, 1, 1),
        schedule=None,
        catchup=False,
        max_active_tasks=VIDEOS,
        tags=["bench"],
    ):
        GPTProtoGenerateVideoOperator.partial(
            task_id="generate",
            pool=POOL,
            deferrable=deferrable,
            poll_interval=POLL_INTERVAL,
            timeout=timedelta(minutes=20),
        ).expand(prompt=[f"bench {mode} video {i}" for i in range(VIDEOS)])
