"""Spending limits, dry runs and the flex tier: DAGs for tests/integration/test_budget.py (emulator)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG

from airflow_provider_gptproto.operators.batch import GPTProtoBatchGenerateVideosOperator
from airflow_provider_gptproto.operators.gptproto import GPTProtoGenerateVideoOperator
from tests.integration.failure_log import RECORD

# The emulator bills width x height x fps x seconds / 1024: a 768:768, 5 s, 24 fps video is 69120.
TOKENS_PER_VIDEO = 69_120
TOKEN_LIMIT = 172_800  # two and a half videos

# dag id -> (max_in_flight, limits and options)
BATCHES: dict[str, tuple[int, dict[str, Any]]] = {
    "it_budget_videos": (2, {"max_videos": 3}),
    "it_budget_videos_defer": (2, {"max_videos": 3, "deferrable": True}),
    "it_budget_seconds": (4, {"max_video_seconds": 12, "on_budget": "succeed"}),
    "it_budget_tokens_1": (1, {"max_usage_tokens": TOKEN_LIMIT, "on_budget": "succeed"}),
    "it_budget_tokens_4": (4, {"max_usage_tokens": TOKEN_LIMIT, "on_budget": "succeed"}),
    "it_budget_dry_run": (4, {"max_videos": 2, "dry_run": True}),
    "it_budget_flex": (
        4,
        {"service_tier": "flex", "timeout": 5_400, "deadline": 7_200, "max_failed_items": 1},
    ),
}

for dag_id, (max_in_flight, options) in BATCHES.items():
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={"prompts": ["a calm lake"], "destination": "/tmp/unset", "failure_log": ""},
        render_template_as_native_obj=True,
    ):
        GPTProtoBatchGenerateVideosOperator(
            task_id="batch",
            prompts="{{ params.prompts }}",
            destination="{{ params.destination }}",
            max_in_flight=max_in_flight,
            poll_interval=0.2,
            max_wait_ready=1,
            retries=1,
            retry_delay=timedelta(seconds=0),
            **{"timeout": 60, "deadline": 300, "deferrable": False, **options},
            **RECORD,
        )

with DAG(
    "it_flex_generate",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"prompt": "a calm lake", "failure_log": ""},
):
    GPTProtoGenerateVideoOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        service_tier="flex",
        timeout=4_000,
        poll_interval=0.2,
        **RECORD,
    )
