"""Asset consumer: runs whenever a new video lands (an event of the ``gptproto_videos`` asset).

It reads the event's metadata (prompt, model, seed, task id, sha256, bytes, uri) and checks that
the file it points at has the announced size, the way a cataloguing or publishing step would.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_gptproto.assets import GPTPROTO_VIDEOS

with DAG(
    dag_id="gptproto_asset_consumer",
    start_date=datetime(2026, 1, 1),
    schedule=[GPTPROTO_VIDEOS],
    catchup=False,
    tags=["gptproto", "example"],
) as dag:

    @task
    def catalogue(triggering_asset_events: dict | None = None) -> list[dict]:
        from airflow.sdk import ObjectStoragePath

        seen = []
        for events in (triggering_asset_events or {}).values():
            for event in events:
                meta = dict(event.extra)
                size = ObjectStoragePath(meta["uri"]).stat().st_size
                if size != meta["bytes"]:
                    raise ValueError(f"{meta['uri']} has {size} bytes, the event announced {meta['bytes']}")
                print(f"New video {meta['task_id']}: {meta['uri']} prompt={meta.get('prompt')!r}")
                seen.append(meta)
        return seen

    catalogue()
