"""End to end: the catalogue batch example on real Airflow, its worker SIGKILLed mid-batch.

Real processes (api-server, scheduler, dag-processor, triggerer, LocalExecutor) run
``dags_examples/gptproto_catalog_batch.py`` against the emulator. The first video download is held
by the emulator (a latency fault), so the kill lands in a worker phase that is downloading while
every other item runs remotely. The retry must resume from the journal in the task state store:
no item created twice, every video whole, the manifest complete, the downstream report green.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_gptproto.emulator.harness import EmulatorProcess, start_emulator
from dev.airflow_stack import AirflowStack
from tests.support.reliability_stack import sigkill_running_task, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(400)]

DAG_ID = "gptproto_catalog_batch"
EXAMPLE = Path(__file__).resolve().parents[2] / "dags_examples" / "gptproto_catalog_batch.py"
N_ITEMS = 30


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with start_emulator(queue_seconds=1.0, run_seconds=2.0) as emu:
        yield emu


@pytest.fixture(scope="module")
def stack(emulator: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    dags = tmp_path_factory.mktemp("batch-dags")
    shutil.copy(EXAMPLE, dags / EXAMPLE.name)
    conn = {"conn_type": "gptproto", "host": emulator.url, "password": emulator.api_key}
    airflow = AirflowStack(
        tmp_path_factory.mktemp("airflow-home"),
        dags_folder=dags,
        extra_env={"AIRFLOW_CONN_GPTPROTO_DEFAULT": json.dumps(conn)},
        wait_for_dags=(DAG_ID,),
        dags_paused=False,
    )
    try:
        airflow.start()
        yield airflow
    finally:
        leftovers = airflow.stop()
        assert not leftovers, f"processes survived the stack: {leftovers}"


def test_worker_killed_mid_batch_resumes_without_paying_twice(
    stack: AirflowStack, emulator: EmulatorProcess, tmp_path: Path
) -> None:
    rule = emulator.add_fault(endpoint="video", action="latency", latency_seconds=120, count=1)
    client = stack.client
    run_id = client.trigger(DAG_ID, {"n_products": N_ITEMS, "catalog_dir": f"file://{tmp_path}"})

    wait_until(
        lambda: any(r["id"] == rule["id"] and r["applied"] == 1 for r in emulator.faults()),
        240,
        "the first video download",
    )
    sigkill_running_task(stack, DAG_ID, run_id, "generate")

    outcome = client.wait_for_run(DAG_ID, run_id, timeout=300, poll=1.0)
    generate = outcome.ti("generate")
    assert generate["try_number"] == 2, generate
    creates = Counter(t["prompt"] for t in emulator.tasks())
    assert len(creates) == N_ITEMS and set(creates.values()) == {1}, creates  # exactly one create each
    second = client.task_log(DAG_ID, run_id, "generate", 2)
    assert "Resuming batch" in second, second

    summary = client.xcom(DAG_ID, run_id, "generate")
    assert summary["succeeded"] == N_ITEMS and summary["failed"] == 0, summary
    out = Path(summary["destination"].removeprefix("file://"))
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["key"] for r in rows] == [f"sku-{n:05d}" for n in range(N_ITEMS)]
    for row in rows:
        data = (out / f"{row['key']}.mp4").read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"] and len(data) == row["bytes"]
        assert row["usage"] and row["task_id"]
    assert not list(out.rglob("*.part")), "a partial file survived the kill"
    assert client.xcom(DAG_ID, run_id, "report")["videos"] == N_ITEMS
    print(f"\nworker SIGKILLed mid-batch; try 2 resumed; {N_ITEMS} items, {sum(creates.values())} creates")
