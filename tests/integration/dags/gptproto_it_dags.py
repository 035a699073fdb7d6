"""DAGs driven by the integration tests through ``DAG.test()`` against the emulator.

Each DAG takes what varies per test from ``params`` so one file serves many cases.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from airflow_provider_gptproto.operators.gptproto import (
    GPTProtoDownloadVideoOperator,
    GPTProtoGenerateVideoOperator,
)
from airflow_provider_gptproto.sensors.gptproto import GPTProtoTaskSensor
from tests.integration.failure_log import RECORD

START = datetime(2026, 1, 1)
FAST = {"poll_interval": 0.2, "retry_delay": timedelta(seconds=0)}


def _dag(dag_id: str, **params: object) -> DAG:
    return DAG(
        dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        params=params,
        render_template_as_native_obj=True,
    )


for mode, deferrable in (("sync", False), ("defer", True)):
    with _dag(f"it_generate_{mode}", prompt="a calm lake", seed=7):
        GPTProtoGenerateVideoOperator(
            task_id="generate",
            prompt="{{ params.prompt }}",
            seed="{{ params.seed }}",
            deferrable=deferrable,
            retries=1,
            timeout=60,
            **FAST,
        )

    with _dag(f"it_generate_takes_{mode}", prompt="a calm lake", seed=None):
        GPTProtoGenerateVideoOperator(
            task_id="generate",
            prompt="{{ params.prompt }}",
            seed="{{ params.seed }}",
            takes=3,
            deferrable=deferrable,
            retries=1,
            timeout=60,
            **FAST,
        )

    with _dag(f"it_timeout_{mode}", prompt="slow lake"):
        GPTProtoGenerateVideoOperator(
            task_id="generate", prompt="{{ params.prompt }}", deferrable=deferrable, timeout=1.5, **FAST
        )

    with _dag(f"it_sensor_{mode}", task_id="missing"):
        GPTProtoTaskSensor(
            task_id="wait",
            gptproto_task_id="{{ params.task_id }}",
            deferrable=deferrable,
            poke_interval=0.2,
            timeout=60,
        )

with _dag("it_content_policy", prompt="forbidden [[fail:policy]]"):
    GPTProtoGenerateVideoOperator(task_id="generate", prompt="{{ params.prompt }}", retries=2, **FAST)

with _dag("it_no_wait", prompt="just create"):
    GPTProtoGenerateVideoOperator(task_id="generate", prompt="{{ params.prompt }}", wait_for_completion=False)

with _dag("it_mapped", prompts=["one", "two", "three"]):

    @task
    def prompts(params: dict | None = None) -> list[str]:
        return list((params or {})["prompts"])

    GPTProtoGenerateVideoOperator.partial(task_id="generate", deferrable=True, **FAST).expand(
        prompt=prompts()
    )

with _dag("it_taskflow", subject="otter"):

    @task
    def make_prompt(params: dict | None = None) -> str:
        return f"An {(params or {})['subject']} floating on its back"

    GPTProtoGenerateVideoOperator(task_id="generate", prompt=make_prompt(), **FAST)

with _dag("it_download", prompt="a lighthouse", dest="/tmp/unused/"):
    generate = GPTProtoGenerateVideoOperator(task_id="generate", prompt="{{ params.prompt }}", **FAST)
    GPTProtoDownloadVideoOperator(
        task_id="download", gptproto_task=generate.output, destination="{{ params.dest }}", retries=1
    )


# Hostile video links ([[video:...]] markers): the download refuses them; 1 MiB stops an endless body.
with _dag("it_hostile_video", prompt="a lighthouse", dest="/tmp/unused/", failure_log=""):
    generate = GPTProtoGenerateVideoOperator(task_id="generate", prompt="{{ params.prompt }}", **FAST)
    GPTProtoDownloadVideoOperator(
        task_id="download",
        gptproto_task=generate.output,
        destination="{{ params.dest }}",
        max_bytes=1024 * 1024,
        retries=1,
        retry_delay=timedelta(seconds=0),
        **RECORD,
    )

# rel_pipeline_short_deadline: for the fault rows that end in a timeout, which no test should wait
# a minute for (the deadline is what they study, not its length).
for name, cap, deadline in (
    ("rel_pipeline", None, 60),
    ("rel_pipeline_capped", 50_000, 60),
    ("rel_pipeline_short_deadline", None, 6),
):
    with _dag(name, prompt="a fault-tolerant lighthouse", dest="/tmp/unused/", failure_log=""):
        generated = GPTProtoGenerateVideoOperator(
            task_id="generate", prompt="{{ params.prompt }}", retries=1, timeout=deadline, **FAST, **RECORD
        )
        GPTProtoDownloadVideoOperator(
            task_id="download",
            gptproto_task=generated.output,
            destination="{{ params.dest }}",
            max_bytes=cap,
            retries=1,
            retry_delay=timedelta(seconds=0),
            **RECORD,
        )

with _dag(
    "it_lineage", prompt="a kite over dunes", image="https://images.example/kite.png", dest="/tmp/unused/"
):
    # Image-to-video (upstream format), then the download: the OpenLineage test reads their events.
    lineage_generate = GPTProtoGenerateVideoOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        images=["{{ params.image }}"],
        resolution="480p",
        seed=11,
        **FAST,
    )
    GPTProtoDownloadVideoOperator(
        task_id="download", gptproto_task=lineage_generate.output, destination="{{ params.dest }}"
    )
