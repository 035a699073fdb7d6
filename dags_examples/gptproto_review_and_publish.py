"""Three takes of each prompt, a person picks one per prompt, only the picks are published (Airflow 3.1+).

``generate`` makes three prompts x three takes (each take its own seed) in one batch task.
``review`` waits for a person: in "Required actions" (or the plugin's review page, linked from the
request) they play the takes, choose one per prompt (``pick_1`` ... ``pick_3``) and Approve, or
Reject to publish nothing. Airflow records who answered and when. With no answer within a day the
task fails (``response_timeout`` without ``defaults``). ``publish`` copies only the chosen takes to
the publish folder, each file whole or not at all, and records an asset event on that folder.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_gptproto.operators.batch import GPTProtoBatchGenerateVideosOperator
from airflow_provider_gptproto.operators.publish import GPTProtoPublishVideosOperator
from airflow_provider_gptproto.operators.review import GPTProtoReviewVideosOperator

OUTPUT_DIR = "{{ params.output_dir or var.value.get('gptproto_output_dir', '/tmp/gptproto_videos') }}"
RUN = "{{ run_id | replace(':', '_') | replace('+', '_') }}"

with DAG(
    dag_id="gptproto_review_and_publish",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["gptproto", "example"],
    params={
        "prompts": Param(
            [
                "A lighthouse on a cliff at dusk, waves breaking below",
                "A red kettle turning slowly on a white table",
                "A hummingbird hovering at a purple flower",
            ],
            type="array",
            minItems=1,
        ),
        "output_dir": Param("", type="string"),
    },
    render_template_as_native_obj=True,
) as dag:
    generate = GPTProtoBatchGenerateVideosOperator(
        task_id="generate",
        prompts="{{ params.prompts }}",
        takes=3,
        destination=f"{OUTPUT_DIR}/review/{RUN}/takes",
        duration="5s",
        poll_interval=2,
        deferrable=True,
    )

    review = GPTProtoReviewVideosOperator(
        task_id="review",
        videos=generate.output,
        subject="Pick the best take of each prompt",
        response_timeout=timedelta(days=1),
    )

    publish = GPTProtoPublishVideosOperator(
        task_id="publish",
        review=review.output,
        destination=f"{OUTPUT_DIR}/review/{RUN}/published",
    )

    generate >> review >> publish
