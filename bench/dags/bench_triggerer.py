"""Benchmark 1's real-triggerer point: N tasks born deferred on GPTProtoTaskTriggers, and a probe."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from bench.probe import POLLERS, ProbeOperator, TriggerStartedPoller


@task
def poller_ids() -> list[str]:
    """The waits' ids, from a task rather than a literal in the DAG file.

    A task born in the triggerer (``start_from_trigger``) gets its whole serialized DAG in its
    workload, and the trigger runner deserializes it once per trigger: a literal list of N ids in
    the DAG made loading N triggers cost O(N^2) (at 10,000: minutes and over 5 GiB in each
    triggerer process, all of it Airflow's, none of it the triggers').
    """
    return [f"bench-{i}" for i in range(POLLERS)]


with DAG(
    dag_id="bench_triggerer_pollers",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    max_active_tasks=POLLERS + 10,
    tags=["bench"],
):
    TriggerStartedPoller.partial(task_id="poll").expand(gptproto_task_id=poller_ids())

with DAG(
    dag_id="bench_triggerer_probe",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["bench"],
):
    ProbeOperator(task_id="probe")
