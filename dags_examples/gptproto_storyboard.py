"""A 30-second product video from a storyboard: six 5-second shots, chained and stitched.

``GPTProtoStoryboardOperator`` reads ``storyboards/product.yaml`` (shipped beside this file; any
ObjectStoragePath works, e.g. ``s3://conn@bucket/boards/product.yaml``), validates every shot before
anything is paid for, and renders the shots one after another, each starting from the previous
shot's last frame (``continuity="last_frame"``). No worker slot is held while a shot renders. The
destination then holds each shot's ``<key>.mp4``, ``manifest.jsonl``, the stitched
``storyboard.mp4``, ``storyboard.json`` (each shot's span in the video) and ``chapters.vtt``.
Stitching needs PyAV: ``pip install 'airflow-provider-gptproto[storyboard]'``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, ObjectStoragePath, Param, task

from airflow_provider_gptproto.operators.storyboard import GPTProtoStoryboardOperator

BOARD = Path(__file__).parent / "storyboards" / "product.yaml"
OUTPUT_DIR = "{{ params.output_dir or var.value.get('gptproto_output_dir', '/tmp/gptproto_videos') }}"

with DAG(
    dag_id="gptproto_storyboard",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["gptproto", "example"],
    params={"output_dir": Param("", type="string")},
) as dag:
    storyboard = GPTProtoStoryboardOperator(
        task_id="storyboard",
        storyboard_file=str(BOARD),
        destination=OUTPUT_DIR + "/storyboard/{{ run_id | replace(':', '_') | replace('+', '_') }}",
        continuity="last_frame",  # each shot starts from the previous shot's last frame
        duration=5,  # seconds per shot: 6 x 5 s = 30 s
        ratio="16:9",
        resolution="720p",
        shot_retries=1,  # a failed shot is tried once more, with a new seed
        poll_interval=5,
        deferrable=True,
        retries=2,
        retry_delay=timedelta(seconds=10),
    )

    @task
    def report(result: dict) -> dict:
        """Downstream: the stitched video and where each shot sits in it."""
        board = json.loads(ObjectStoragePath(result["storyboard_uri"]).read_text())
        for shot in board["shots"]:
            print(f"{shot['start']:6.2f}-{shot['end']:6.2f} s  {shot['key']}: {shot['prompt']}")
        print(f"{result['uri']}: {result['duration']:.2f} s, stitched by {result['method']}")
        return {"video": result["uri"], "duration": result["duration"]}

    report(storyboard.output)
