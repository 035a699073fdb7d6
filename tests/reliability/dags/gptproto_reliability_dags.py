"""DAGs for the process-fault, soak and secret-leak tests on real Airflow (tests/reliability/).

Only the AirflowStack of those tests loads this folder. What varies per case (prompt, connection,
timeout, number of videos) comes from ``params``, so each test marks its remote tasks with a unique
prompt and the emulator's fault rules can target them with ``prompt_contains``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from airflow_provider_gptproto.operators.gptproto import (
    GPTProtoDownloadVideoOperator,
    GPTProtoGenerateVideoOperator,
)

START = datetime(2026, 1, 1)
POOL = "gptproto"
# Small, fast videos: the seed format at the smallest size (the emulator's render rate is set low).
DURATION, DIMENSION = "5s", "768:768"


def _dag(dag_id: str, **params: object) -> DAG:
    return DAG(
        dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        params=params,
        render_template_as_native_obj=True,
        max_active_tasks=64,
        tags=["gptproto", "reliability"],
    )


# One video, deferrable, one retry: the worker-kill test SIGKILLs the task process mid-try.
with _dag("rel_worker_kill", prompt="worker kill"):
    GPTProtoGenerateVideoOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        deferrable=True,
        poll_interval=1.0,
        retries=1,
        retry_delay=timedelta(seconds=1),
        timeout=timedelta(minutes=10),
        duration=DURATION,
        dimension=DIMENSION,
    )

# Two deferred videos while the triggerer is killed: one finishes, one runs into its deadline.
with _dag("rel_triggerer_kill", finish_prompt="finishes", slow_prompt="times out", timeout=45):
    GPTProtoGenerateVideoOperator(
        task_id="finishes",
        prompt="{{ params.finish_prompt }}",
        deferrable=True,
        poll_interval=1.0,
        timeout=timedelta(minutes=10),
        duration=DURATION,
        dimension=DIMENSION,
    )
    GPTProtoGenerateVideoOperator(
        task_id="times_out",
        prompt="{{ params.slow_prompt }}",
        deferrable=True,
        poll_interval=1.0,
        timeout=45,
        duration=DURATION,
        dimension=DIMENSION,
    )

# A deferred video a user marks failed: the trigger's on_kill must cancel the remote task.
with _dag("rel_mark_failed", prompt="mark failed"):
    GPTProtoGenerateVideoOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        deferrable=True,
        poll_interval=1.0,
        timeout=timedelta(minutes=10),
        duration=DURATION,
        dimension=DIMENSION,
    )

# The emulator restarts (same port, same state file) mid-generation; both wait modes ride it out.
with _dag("rel_emulator_restart", prompt="emulator restart"):
    for mode, deferrable in (("deferred", True), ("sync", False)):
        generated = GPTProtoGenerateVideoOperator(
            task_id=f"generate_{mode}",
            gptproto_conn_id="gptproto_restart",
            prompt="{{ params.prompt }} " + mode,
            deferrable=deferrable,
            poll_interval=1.0,
            retries=1,
            retry_delay=timedelta(seconds=1),
            timeout=timedelta(minutes=10),
            duration=DURATION,
            dimension=DIMENSION,
        )
        GPTProtoDownloadVideoOperator(
            task_id=f"download_{mode}",
            gptproto_conn_id="gptproto_restart",
            gptproto_task=generated.output,
            destination="{{ params.output_dir }}/restart/",
            retries=1,
            retry_delay=timedelta(seconds=1),
        )

# The soak: many mapped videos through the gptproto pool, generate deferrable, then download.
with _dag("rel_soak", count=200, prefix="soak", output_dir="/tmp/gptproto-soak"):

    @task
    def prompts(params: dict | None = None) -> list[str]:
        params = params or {}
        return [f"{params['prefix']} video {i:03d}" for i in range(int(params["count"]))]

    soak_generate = GPTProtoGenerateVideoOperator.partial(
        task_id="generate",
        pool=POOL,
        deferrable=True,
        poll_interval=1.0,
        timeout=timedelta(minutes=15),
        retries=2,
        retry_delay=timedelta(seconds=2),
        duration=DURATION,
        dimension=DIMENSION,
    ).expand(prompt=prompts())

    GPTProtoDownloadVideoOperator.partial(
        task_id="download",
        pool=POOL,
        destination="{{ params.output_dir }}/",
        retries=2,
        retry_delay=timedelta(seconds=2),
    ).expand(gptproto_task=soak_generate.output)

# Failures for the leak check: each case's prompt is "<params.prompt> <case>", for fault targeting.
with _dag("rel_failures", prompt="leak check", output_dir="/tmp/gptproto-failures"):
    for case, conn_id, extra in (
        ("content_policy", "gptproto_default", " [[fail:policy]]"),
        ("key_echoed_on_create", "gptproto_default", ""),
        ("key_echoed_to_trigger", "gptproto_default", ""),
        ("wrong_key", "gptproto_wrong_key", ""),
        ("succeeds", "gptproto_default", ""),
    ):
        generated = GPTProtoGenerateVideoOperator(
            task_id=case,
            gptproto_conn_id=conn_id,
            prompt="{{ params.prompt }} " + case + extra,
            deferrable=True,
            poll_interval=1.0,
            timeout=timedelta(minutes=5),
            duration=DURATION,
            dimension=DIMENSION,
        )
    # The last case succeeds; its video is downloaded.
    GPTProtoDownloadVideoOperator(
        task_id="download", gptproto_task=generated.output, destination="{{ params.output_dir }}/"
    )
