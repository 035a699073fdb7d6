"""Two storyboards of the same six shots, chained and independent, for the end-to-end cut test."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_gptproto.operators.storyboard import GPTProtoStoryboardOperator

SHOTS = [
    {"key": f"shot-{n}", "prompt": f"Shot {n} of a paper boat drifting down a rain gutter", "seed": 100 + n}
    for n in range(6)
]

with DAG(
    dag_id="gptproto_e2e_storyboard_cuts",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    params={"output_dir": Param("", type="string")},
):
    for continuity in ("last_frame", "none"):
        GPTProtoStoryboardOperator(
            task_id=continuity,
            shots=SHOTS,
            continuity=continuity,
            destination="{{ params.output_dir }}/" + continuity,
            duration=2,
            ratio="16:9",
            resolution="480p",
            shot_retries=1,
            poll_interval=1,
            deferrable=True,
        )
