"""DAGs for issue 14's integration tests: the hook in a @task, sync waits through outages, downloads.

``gptproto_hook_in_task`` is the example DAG of ``dags_examples/`` compiled from its own source
here, so ``DAG.test()`` (which reads this folder) runs exactly what we ship.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG

from airflow_provider_gptproto.operators.gptproto import (
    GPTProtoDownloadVideoOperator,
    GPTProtoGenerateVideoOperator,
)
from airflow_provider_gptproto.sensors.gptproto import GPTProtoTaskSensor
from tests.integration.failure_log import RECORD

_EXAMPLE = Path(__file__).resolve().parents[3] / "dags_examples" / "gptproto_hook_in_task.py"
exec(compile(_EXAMPLE.read_text(encoding="utf-8"), __file__, "exec"))

START = datetime(2026, 1, 1)


def _dag(dag_id: str, **params: object) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, params=params)


with _dag("it14_sync_outage", prompt="through the outage", failure_log=""):
    GPTProtoGenerateVideoOperator(
        task_id="generate", prompt="{{ params.prompt }}", poll_interval=0.2, timeout=120, **RECORD
    )

for mode in ("poke", "reschedule"):
    with _dag(f"it14_sensor_{mode}", task_id="missing", failure_log=""):
        GPTProtoTaskSensor(
            task_id="wait",
            gptproto_task_id="{{ params.task_id }}",
            mode=mode,
            poke_interval=0.2,
            timeout=120,
            **RECORD,
        )

with _dag("it14_lost_create", prompt="a lost create", failure_log=""):
    GPTProtoGenerateVideoOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        poll_interval=0.2,
        retries=1,
        retry_delay=timedelta(seconds=0),
        **RECORD,
    )

for if_exists in ("skip", "fail"):
    with _dag(f"it14_download_{if_exists}", prompt="a lighthouse", dest="/tmp/unused.mp4", failure_log=""):
        made = GPTProtoGenerateVideoOperator(
            task_id="generate", prompt="{{ params.prompt }}", poll_interval=0.2
        )
        GPTProtoDownloadVideoOperator(
            task_id="download",
            gptproto_task=made.output,
            destination="{{ params.dest }}",
            if_exists=if_exists,
            **RECORD,
        )
