"""Text to video: one prompt -> deferrable generate -> download to a local folder -> read the file.

Shows the main job end to end. The output folder comes from the ``output_dir`` param, which defaults
to the Airflow Variable ``gptproto_output_dir`` (or ``/tmp/gptproto_videos``). While the video is
generated the task waits in the triggerer, so no worker slot is held.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from airflow_provider_gptproto.operators.gptproto import (
    GPTProtoDownloadVideoOperator,
    GPTProtoGenerateVideoOperator,
)

OUTPUT_DIR = "{{ params.output_dir or var.value.get('gptproto_output_dir', '/tmp/gptproto_videos') }}"

with DAG(
    dag_id="gptproto_text_to_video",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["gptproto", "example"],
    params={
        "prompt": Param("A red fox running through fresh snow at dawn", type="string", minLength=1),
        "seed": Param(12345, type="integer", minimum=1, maximum=2147483647),
        # Empty: use the Variable gptproto_output_dir, else /tmp/gptproto_videos.
        "output_dir": Param("", type="string"),
    },
    render_template_as_native_obj=True,
) as dag:
    generate = GPTProtoGenerateVideoOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        seed="{{ params.seed }}",
        duration="5s",
        dimension="1280:768",
        deferrable=True,
        poll_interval=2,
        timeout=timedelta(minutes=30),
    )

    download = GPTProtoDownloadVideoOperator(
        task_id="download",
        gptproto_task=generate.output,
        destination=OUTPUT_DIR + "/",
    )

    @task
    def inspect_video(saved: dict) -> dict:
        """A downstream step that reads the file: checks the MP4 signature and reports its size."""
        from airflow.sdk import ObjectStoragePath

        path = ObjectStoragePath(saved["uri"])
        with path.open("rb") as handle:
            head = handle.read(12)
        if head[4:8] != b"ftyp":
            raise ValueError(f"{path} is not an MP4 file")
        print(f"Video at {path}: {saved['bytes']} bytes, sha256 {saved['sha256']}")
        return {"uri": saved["uri"], "bytes": saved["bytes"]}

    inspect_video(download.output)
