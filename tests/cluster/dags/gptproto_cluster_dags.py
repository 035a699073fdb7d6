"""The DAG of the cluster tests (tests/cluster/): mapped deferrable generates, each followed by a download.

Only the cluster of those tests loads this folder. ``params.prefix`` goes into every prompt, so a test
marks its remote tasks with a unique word and scripts them with emulator markers (``[[queue:S]]``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from airflow_provider_gptproto.operators.gptproto import (
    GPTProtoDownloadVideoOperator,
    GPTProtoGenerateVideoOperator,
)

with DAG(
    "cluster_videos",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"count": 3, "prefix": "cluster", "output_dir": "/tmp/gptproto-cluster"},
    render_template_as_native_obj=True,
    max_active_tasks=64,
    tags=["gptproto", "cluster"],
):

    @task
    def prompts(params: dict | None = None) -> list[str]:
        params = params or {}
        return [f"{params['prefix']} video {i:03d}" for i in range(int(params["count"]))]

    generated = GPTProtoGenerateVideoOperator.partial(
        task_id="generate",
        deferrable=True,
        poll_interval=2.0,
        timeout=timedelta(minutes=15),
        retries=2,
        retry_delay=timedelta(seconds=2),
        duration="5s",
        dimension="768:768",
    ).expand(prompt=prompts())

    GPTProtoDownloadVideoOperator.partial(
        task_id="download",
        destination="{{ params.output_dir }}/",
        retries=2,
        retry_delay=timedelta(seconds=2),
    ).expand(gptproto_task=generated.output)
