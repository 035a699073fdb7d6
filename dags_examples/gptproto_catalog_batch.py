"""A product catalogue to videos in one task: GPTProtoBatchGenerateVideosOperator.

``write_catalog`` stands in for your upstream system: it writes a CSV of ``n_products`` product
lines (1,000 by default) to object storage (here a local ``file://`` folder, so the DAG runs as
shown; point ``catalog_dir`` at ``s3://conn@bucket/path`` or any ObjectStoragePath in production).
``generate`` reads it, validates every line before anything is paid for, keeps ``max_in_flight``
remote tasks running, and writes ``<sku>.mp4`` per product plus ``manifest.jsonl``. ``report``
reads the manifest. One task instance and about ``2 * n / max_in_flight`` worker phases for the
whole catalogue, where dynamic task mapping needs ``n`` task instances and caps ``n`` at
``[core] max_map_length``.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

from airflow.sdk import DAG, ObjectStoragePath, Param, task

from airflow_provider_gptproto.operators.batch import GPTProtoBatchGenerateVideosOperator

ROOT = "{{ params.catalog_dir or var.value.get('gptproto_catalog_dir', 'file:///tmp/gptproto_catalog') }}"
PRODUCTS = ("kettle", "desk lamp", "backpack", "running shoe", "teapot", "bicycle helmet", "armchair")
COLOURS = ("red", "matte black", "sage green", "ivory", "cobalt blue")

with DAG(
    dag_id="gptproto_catalog_batch",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["gptproto", "example"],
    params={
        "n_products": Param(1000, type="integer", minimum=1),
        "catalog_dir": Param("", type="string"),
    },
    render_template_as_native_obj=True,
) as dag:

    @task
    def write_catalog(params: dict | None = None, run_id: str | None = None) -> str:
        """The input: a CSV with a ``key`` (the product's SKU, naming its video) and a ``prompt``."""
        params = params or {}
        root = ObjectStoragePath(params.get("catalog_dir") or "file:///tmp/gptproto_catalog")
        path = root / str(run_id).replace(":", "_").replace("+", "_") / "catalog.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["key", "prompt", "duration"])
        for n in range(int(params.get("n_products", 1000))):
            product, colour = PRODUCTS[n % len(PRODUCTS)], COLOURS[n // len(PRODUCTS) % len(COLOURS)]
            writer.writerow([f"sku-{n:05d}", f"A {colour} {product} turning slowly on a white table", "5s"])
        path.write_text(out.getvalue())
        return str(path)

    catalog = write_catalog()

    generate = GPTProtoBatchGenerateVideosOperator(
        task_id="generate",
        requests_file=catalog,
        destination=f"{ROOT}/{{{{ run_id | replace(':', '_') | replace('+', '_') }}}}/videos",
        dimension="1280:768",
        max_in_flight=100,
        max_failed_items=0.01,  # up to 1% of the catalogue may fail; the manifest says which
        poll_interval=5,
        deferrable=True,
        retries=2,
        retry_delay=timedelta(seconds=10),
    )

    @task
    def report(summary: dict) -> dict:
        """Downstream: read the manifest, e.g. to publish the videos or re-queue the failures."""
        rows = [json.loads(line) for line in ObjectStoragePath(summary["manifest"]).read_text().splitlines()]
        failed = [row["key"] for row in rows if row["status"] != "succeeded"]
        stored = sum(row["bytes"] or 0 for row in rows)
        print(f"{len(rows) - len(failed)} videos ({stored / 1e6:.1f} MB); failed: {failed[:20]}")
        return {"videos": len(rows) - len(failed), "failed": failed, "bytes": stored}

    report(generate.output)
