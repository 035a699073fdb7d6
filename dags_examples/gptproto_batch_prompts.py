"""Batch: one video per prompt with dynamic task mapping, concurrency capped by the ``gptproto`` pool.

Prompts come from the ``prompts`` param, or from a text file (one prompt per line) named by the
``prompts_file`` param. Each mapped video is downloaded and recorded as an event of the
``gptproto_videos`` asset. Create the pool first: ``airflow pools set gptproto 4 "GPTProto API"``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from airflow_provider_gptproto.operators.gptproto import (
    GPTProtoDownloadVideoOperator,
    GPTProtoGenerateVideoOperator,
)

POOL = "gptproto"
OUTPUT_DIR = "{{ params.output_dir or var.value.get('gptproto_output_dir', '/tmp/gptproto_videos') }}"

with DAG(
    dag_id="gptproto_batch_prompts",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["gptproto", "example"],
    params={
        "prompts": Param(
            ["A lighthouse in a storm", "A hummingbird drinking nectar", "Neon city street in the rain"],
            type="array",
            minItems=1,
        ),
        "prompts_file": Param("", type="string"),
        "output_dir": Param("", type="string"),
    },
) as dag:

    @task
    def load_prompts(params: dict | None = None) -> list[str]:
        """Prompts from the file when one is named, else from the params; blank lines are skipped."""
        params = params or {}
        if params.get("prompts_file"):
            with open(params["prompts_file"], encoding="utf-8") as handle:
                prompts = [line.strip() for line in handle if line.strip()]
        else:
            prompts = [str(p).strip() for p in params["prompts"] if str(p).strip()]
        if not prompts:
            raise ValueError("No prompts given")
        return prompts

    generate = GPTProtoGenerateVideoOperator.partial(
        task_id="generate",
        pool=POOL,
        duration="5s",
        dimension="768:768",
        deferrable=True,
        poll_interval=2,
        timeout=timedelta(minutes=30),
        retries=2,
        retry_delay=timedelta(seconds=5),
    ).expand(prompt=load_prompts())

    GPTProtoDownloadVideoOperator.partial(
        task_id="download",
        pool=POOL,
        destination=OUTPUT_DIR + "/batch/",
        retries=2,
        retry_delay=timedelta(seconds=5),
    ).expand(gptproto_task=generate.output)
