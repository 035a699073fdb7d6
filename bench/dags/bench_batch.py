"""Benchmark 5: N videos as one batch task vs N mapped generate + download task pairs."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_gptproto.operators.batch import GPTProtoBatchGenerateVideosOperator
from airflow_provider_gptproto.operators.gptproto import (
    GPTProtoDownloadVideoOperator,
    GPTProtoGenerateVideoOperator,
)

VIDEOS = int(os.environ.get("BENCH_BATCH_VIDEOS", "10"))
BIG = int(os.environ.get("BENCH_BATCH_BIG", "20"))
IN_FLIGHT = int(os.environ.get("BENCH_BATCH_IN_FLIGHT", "10"))
BIG_IN_FLIGHT = int(os.environ.get("BENCH_BATCH_BIG_IN_FLIGHT", str(IN_FLIGHT)))
POLL = float(os.environ.get("BENCH_BATCH_POLL", "5"))
POOL = os.environ.get("BENCH_BATCH_POOL", "default_pool")
OUT = os.environ.get("BENCH_BATCH_OUT", "/tmp/bench-batch")
# Ten distinct prompts (seed fixed): the emulator renders ten MP4s, not one per video, so its CPU
# stays off the two cores Airflow is measured on.
PROMPTS = [f"bench batch video {i % 10}" for i in range(max(VIDEOS, BIG))]
COMMON = {"seed": 42, "deferrable": True, "poll_interval": POLL}

for dag_id, count, in_flight in (
    ("bench_batch_batch", VIDEOS, IN_FLIGHT),
    ("bench_batch_big", BIG, BIG_IN_FLIGHT),
):
    with DAG(dag_id, start_date=datetime(2026, 1, 1), schedule=None, catchup=False, tags=["bench"]):
        GPTProtoBatchGenerateVideosOperator(
            task_id="generate",
            prompts=PROMPTS[:count],
            destination=f"{OUT}/{dag_id}/{{{{ run_id | replace(':', '_') | replace('+', '_') }}}}",
            max_in_flight=in_flight,
            timeout=timedelta(hours=1),
            deadline=timedelta(hours=6),
            max_wait_ready=60,
            **COMMON,
        )

with DAG(
    "bench_batch_mapped",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    max_active_tasks=2 * VIDEOS,
    tags=["bench"],
):
    generate = GPTProtoGenerateVideoOperator.partial(
        task_id="generate", pool=POOL, timeout=timedelta(hours=1), **COMMON
    ).expand(prompt=PROMPTS[:VIDEOS])
    GPTProtoDownloadVideoOperator.partial(
        task_id="download",
        pool=POOL,
        destination=f"{OUT}/bench_batch_mapped/{{{{ run_id | replace(':', '_') | replace('+', '_') }}}}/",
    ).expand(gptproto_task=generate.output)
