"""The review page's DAG: two prompts, two takes each (different seeds), downloaded, then reviewed."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_gptproto.operators.gptproto import (
    GPTProtoDownloadVideoOperator,
    GPTProtoGenerateVideoOperator,
)
from airflow_provider_gptproto.operators.review import GPTProtoReviewVideosOperator

PROMPTS = ("A red fox running through fresh snow at dawn", "A paper boat drifting down a rainy street")

with DAG(dag_id="review_page_takes", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    generate = GPTProtoGenerateVideoOperator.partial(
        task_id="generate",
        duration="5s",
        dimension="1280:768",
        poll_interval=1,
        timeout=timedelta(minutes=10),
    ).expand_kwargs([{"prompt": prompt, "seed": seed} for prompt in PROMPTS for seed in (7, 8)])
    download = GPTProtoDownloadVideoOperator.partial(
        task_id="download", destination="{{ var.value.gptproto_output_dir }}/review_page/"
    ).expand(gptproto_task=generate.output)
    GPTProtoReviewVideosOperator(task_id="review", videos=download.output, subject="Pick the best takes")
