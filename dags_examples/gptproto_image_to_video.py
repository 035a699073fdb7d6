"""Image to video: first and last frame images, sent in the upstream (Ark) ``content`` format.

``content`` items are passed through as the API documents them; the provider validates roles
(first_frame + last_frame) and URLs before anything is sent, and switches to the upstream wire
format because ``ratio``/``resolution`` and images only exist there.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_gptproto.operators.gptproto import (
    GPTProtoDownloadVideoOperator,
    GPTProtoGenerateVideoOperator,
)

OUTPUT_DIR = "{{ params.output_dir or var.value.get('gptproto_output_dir', '/tmp/gptproto_videos') }}"

with DAG(
    dag_id="gptproto_image_to_video",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["gptproto", "example"],
    params={
        "first_frame_url": Param("https://example.com/frames/sunrise-start.png", type="string"),
        "last_frame_url": Param("https://example.com/frames/sunrise-end.png", type="string"),
        "output_dir": Param("", type="string"),
    },
) as dag:
    generate = GPTProtoGenerateVideoOperator(
        task_id="generate",
        model="doubao-seedance-1-0-lite-i2v-250428",
        content=[
            {"type": "text", "text": "The sun rises over a calm lake, mist lifting"},
            {
                "type": "image_url",
                "image_url": {"url": "{{ params.first_frame_url }}"},
                "role": "first_frame",
            },
            {"type": "image_url", "image_url": {"url": "{{ params.last_frame_url }}"}, "role": "last_frame"},
        ],
        ratio="16:9",
        resolution="480p",
        duration=5,
        return_last_frame=True,
        deferrable=True,
        poll_interval=2,
        timeout=timedelta(minutes=30),
    )

    GPTProtoDownloadVideoOperator(
        task_id="download",
        gptproto_task=generate.output,
        destination=OUTPUT_DIR + "/i2v/",
    )
