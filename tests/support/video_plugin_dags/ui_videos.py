"""DAGs for the UI plugin's tests: two producers, a batch, one without a download, one with hostile paths.

The output folder is the Variable ``gptproto_output_dir`` (the test stack sets it).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Variable, task

from airflow_provider_gptproto.operators.batch import GPTProtoBatchGenerateVideosOperator
from airflow_provider_gptproto.operators.gptproto import (
    GPTProtoDownloadVideoOperator,
    GPTProtoGenerateVideoOperator,
)

OUTPUT_DIR = "{{ var.value.gptproto_output_dir }}"
START = datetime(2026, 1, 1)

# Two shapes: the gallery shows a square video's poster whole, not cropped to the card.
for dag_id, prompt, dimension in (
    ("ui_videos_alpha", "A red fox running through fresh snow at dawn", "1280:768"),
    ("ui_videos_beta", "A paper boat drifting down a rainy street", "768:768"),
):
    with DAG(dag_id=dag_id, start_date=START, schedule=None, catchup=False, tags=["gptproto-ui-test"]):
        generate = GPTProtoGenerateVideoOperator(
            task_id="generate",
            prompt=prompt,
            seed=7,
            duration="5s",
            dimension=dimension,
            poll_interval=1,
            timeout=timedelta(minutes=10),
        )
        GPTProtoDownloadVideoOperator(
            task_id="download", gptproto_task=generate.output, destination=f"{OUTPUT_DIR}/{dag_id}/"
        )

# Two videos as one batch task: its Video tab lists both (read from the manifest it names).
with DAG(dag_id="ui_videos_batch", start_date=START, schedule=None, catchup=False):
    GPTProtoBatchGenerateVideosOperator(
        task_id="batch",
        prompts=["A kite over green hills", {"prompt": "A tram at night", "key": "tram"}],
        destination=f"{OUTPUT_DIR}/ui_videos_batch/",
        duration="5s",
        dimension="768:768",
        seed=11,
        poll_interval=1,
        max_in_flight=2,
    )

# Generated, never downloaded; the emulator hands out links that have already expired.
with DAG(dag_id="ui_videos_signed_only", start_date=START, schedule=None, catchup=False):
    GPTProtoGenerateVideoOperator(
        task_id="generate",
        prompt="A lighthouse in a storm [[link:expired]]",
        duration="5s",
        dimension="768:768",
        poll_interval=1,
        timeout=timedelta(minutes=10),
    )

with DAG(dag_id="ui_videos_hostile", start_date=START, schedule=None, catchup=False):

    @task
    def record_hostile_paths() -> list[dict]:
        """Results naming files the plugin must refuse, each with a hostile prompt.

        A secret, traversals, a symlink named .mp4, another store, a file outside the media roots.
        The first is a typed download result; the others carry no ``kind``, as a task returning the
        same shape would (read by the fallback of plugins/records.py).
        """
        folder = Variable.get("gptproto_output_dir")
        os.makedirs(folder, exist_ok=True)
        disguised = os.path.join(folder, "disguised.mp4")
        if not os.path.lexists(disguised):
            os.symlink("/etc/passwd", disguised)
        # A real file with a video name, outside [gptproto] ui_media_roots.
        outside = os.path.join(os.environ["GPTPROTO_TEST_OUTSIDE_DIR"], "outside.mp4")
        with open(outside, "wb") as handle:
            handle.write(b"outside the media roots")
        results = [
            {"kind": "download", "task_id": "hostile-1", "uri": "/etc/passwd"},
            {"task_id": "hostile-2", "uri": f"{folder}/ui_videos_alpha/../../../../../../etc/passwd"},
            {"task_id": "hostile-3", "uri": f"file://{folder}/x.mp4/../../../../../../../etc/passwd"},
            {"task_id": "hostile-4", "uri": disguised},
            {"task_id": "hostile-5", "uri": "s3://bucket/../../etc/passwd.mp4"},
            {"task_id": "hostile-6", "uri": outside, "bytes": os.path.getsize(outside)},
        ]
        # Markup a browser would run if the plugin did not escape it: tests/e2e/test_ui_plugin.py and
        # tests/browser/test_video_plugin.py assert that it arrives as text.
        prompt = '<img src=x onerror=alert(1)> "><script>alert(1)</script>'
        return [{**result, "prompt": prompt} for result in results]

    record_hostile_paths()
