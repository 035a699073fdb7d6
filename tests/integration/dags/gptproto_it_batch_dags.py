"""Batch DAGs driven by tests/integration/test_batch.py through ``DAG.test()`` against the emulator."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_gptproto.operators.batch import GPTProtoBatchGenerateVideosOperator

for mode, deferrable in (("sync", False), ("defer", True)):
    with DAG(
        f"it_batch_{mode}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={"prompts": ["a calm lake"], "destination": "/tmp/unset", "max_failed_items": 0},
        render_template_as_native_obj=True,
    ):
        GPTProtoBatchGenerateVideosOperator(
            task_id="batch",
            prompts="{{ params.prompts }}",
            destination="{{ params.destination }}",
            max_in_flight=8,
            max_failed_items=0.5,
            poll_interval=0.3,
            timeout=60,
            deadline=300,
            max_wait_ready=2,
            deferrable=deferrable,
            retries=1,
            retry_delay=timedelta(seconds=0),
        )

with DAG(
    "it_batch_rerun",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"manifest": "/tmp/unset/manifest.jsonl", "destination": "/tmp/unset"},
):
    GPTProtoBatchGenerateVideosOperator(
        task_id="batch",
        retry_failed_from="{{ params.manifest }}",
        destination="{{ params.destination }}",
        poll_interval=0.3,
        deferrable=False,
    )

with DAG(
    "it_batch_takes",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"prompts": ["a calm lake"], "destination": "/tmp/unset"},
    render_template_as_native_obj=True,
):
    GPTProtoBatchGenerateVideosOperator(
        task_id="batch",
        prompts="{{ params.prompts }}",
        destination="{{ params.destination }}",
        takes=3,
        max_in_flight=8,
        poll_interval=0.3,
        timeout=60,
        deadline=300,
        deferrable=True,
    )
