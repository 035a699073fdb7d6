"""Storyboard DAGs driven by tests/integration/test_storyboard.py through ``DAG.test()``."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG

from airflow_provider_gptproto.operators.storyboard import GPTProtoStoryboardOperator

for continuity in ("last_frame", "none"):
    with DAG(
        f"it_storyboard_{continuity}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={"shots": ["a calm lake"], "destination": "/tmp/unset"},
        render_template_as_native_obj=True,
    ):
        GPTProtoStoryboardOperator(
            task_id="storyboard",
            shots="{{ params.shots }}",
            destination="{{ params.destination }}",
            continuity=continuity,
            duration=2,
            ratio="16:9",
            resolution="480p",
            poll_interval=0.2,
            timeout=60,
            deadline=300,
            deferrable=continuity == "last_frame",
            retries=1,
            retry_delay=timedelta(seconds=0),
        )

with DAG(
    "it_storyboard_takes",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"shots": ["a calm lake"], "destination": "/tmp/unset"},
    render_template_as_native_obj=True,
):
    GPTProtoStoryboardOperator(
        task_id="storyboard",
        shots="{{ params.shots }}",
        destination="{{ params.destination }}",
        takes=2,
        duration=2,
        ratio="16:9",
        resolution="480p",
        poll_interval=0.2,
        timeout=60,
        deadline=300,
        deferrable=True,
    )

# The example DAG compiled from its own source (so its storyboard file is found beside it).
_EXAMPLE = Path(__file__).resolve().parents[3] / "dags_examples" / "gptproto_storyboard.py"
_namespace: dict[str, object] = {"__file__": str(_EXAMPLE), "__name__": "gptproto_storyboard_example"}
exec(compile(_EXAMPLE.read_text(encoding="utf-8"), str(_EXAMPLE), "exec"), _namespace)
gptproto_storyboard = _namespace["dag"]
