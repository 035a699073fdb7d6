"""Benchmark 1's real-triggerer point: N tasks born deferred on GPTProtoTaskTriggers, and a probe."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from bench.probe import POLLERS, ProbeOperator, TriggerStartedPoller

with DAG(
    dag_id="bench_triggerer_pollers",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    max_active_tasks=POLLERS + 10,
    tags=["bench"],
):
    TriggerStartedPoller.partial(task_id="poll").expand(
        gptproto_task_id=[f"bench-{i}" for i in range(POLLERS)]
    )

with DAG(
    dag_id="bench_triggerer_probe",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["bench"],
):
    ProbeOperator(task_id="probe")
