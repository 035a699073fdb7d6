"""The hook inside a ``@task``: generate a video and save it with one call, no operators.

For code the operators do not cover (your own loop or checks between the steps, another storage
client). ``generate_video`` checks the destination, creates the task, waits (riding out API
outages until its timeout) and stores the video; it raises ``GPTProtoTaskFailedError`` if the task
ends failed, expired or cancelled, so a ``@task`` never "succeeds" without a video. What the
generate operator adds is not here: the worker slot is held while the video renders (no deferral),
and a retry of this task pays for a new video (nothing records the task id across tries), hence
``retries=0``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task


@dag(
    dag_id="gptproto_hook_in_task",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["gptproto", "example"],
    params={
        "prompt": Param("A paper boat drifting down a rainy street", type="string", minLength=1),
        # Empty: /tmp/gptproto_videos.
        "output_dir": Param("", type="string"),
    },
)
def gptproto_hook_in_task() -> None:
    @task(retries=0)
    def generate_and_save(params: dict | None = None, ts_nodash: str | None = None) -> dict:
        from airflow.sdk import ObjectStoragePath

        from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook

        params = params or {}
        folder = ObjectStoragePath(params["output_dir"] or "/tmp/gptproto_videos")
        hook = GPTProtoHook()  # the gptproto_default connection
        try:
            # destination is checked before anything is paid for (an s3:// folder without its
            # provider fails here, naming the package to install) and written once the video is ready.
            saved = hook.generate_video(
                prompt=params["prompt"],
                duration="5s",
                dimension="1280:768",
                poll_interval=2,
                timeout=1800,
                destination=folder / f"paper-boat-{ts_nodash}.mp4",
            )
        finally:
            hook.close()
        print(f"GPTProto task {saved.task_id} (seed {saved.seed}): {saved.file.bytes} bytes at {saved.uri}")
        return saved.to_dict()  # task id, seed, request, stored file: what the Video tab shows

    generate_and_save()


gptproto_hook_in_task()
