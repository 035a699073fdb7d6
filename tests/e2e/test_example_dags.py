"""End to end: the example DAGs on real Airflow processes against the GPTProto emulator.

One emulator (queue 1 s, run 3 s, so every generate task really defers) and one Airflow stack
(api-server, scheduler, dag-processor, triggerer) serve the whole module. The three producer DAGs
are triggered together through the REST API and the tests below each check one promise of the
provider on the same runs: success, deferral in the triggerer, decodable MP4s, asset events with
metadata that the consumer DAG is scheduled on, and exactly one paid create per video.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest

from airflow_provider_gptproto.emulator.harness import EmulatorProcess, start_emulator
from dev.airflow_stack import STATE_MISMATCH, AirflowStack, RunOutcome

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(280)]

T2V, BATCH, I2V, CONSUMER = (
    "gptproto_text_to_video",
    "gptproto_batch_prompts",
    "gptproto_image_to_video",
    "gptproto_asset_consumer",
)
ASSET = "gptproto_videos"
T2V_CONF = {"prompt": "An e2e fox crossing a frozen river", "seed": 4242}
BATCH_PROMPTS = ["e2e batch: a lighthouse", "e2e batch: a hummingbird", "e2e batch: a neon street"]
I2V_PROMPT = "The sun rises over a calm lake, mist lifting"
I2V_MODEL = "doubao-seedance-1-0-lite-i2v-250428"
# Frame size the emulator renders for each DAG's request (dimension, or ratio x resolution).
FRAME_SIZE = {T2V: (1280, 768), BATCH: (768, 768), I2V: (864, 480)}
VIDEOS_PER_DAG = {T2V: 1, BATCH: len(BATCH_PROMPTS), I2V: 1}
METADATA_KEYS = {"prompt", "model", "seed", "task_id", "sha256", "bytes", "uri"}
RUN_TIMEOUT = 180.0


@dataclass
class E2ERuns:
    """What the module's single round of runs left behind, shared by every test."""

    stack: AirflowStack
    emulator: EmulatorProcess
    output_dir: Path
    outcomes: dict[str, RunOutcome]
    seconds: float

    def downloads(self, dag_id: str) -> list[dict[str, Any]]:
        """The download tasks' return values (the asset metadata), one per video."""
        outcome = self.outcomes[dag_id]
        return [
            self.stack.client.xcom(dag_id, outcome.run_id, "download", map_index=ti.get("map_index", -1))
            for ti in outcome.tis("download")
        ]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    """A dedicated emulator, so its counters see only this module's requests.

    ``start_emulator`` is what the plugin's ``gptproto_emulator_factory`` calls; the factory itself
    is function-scoped and this emulator must live as long as the module's Airflow stack.
    """
    with start_emulator(queue_seconds=1.0, run_seconds=3.0) as emu:
        yield emu


@pytest.fixture(scope="module")
def stack(emulator: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """One Airflow deployment for the module (start-up dominates, so every test shares it)."""
    conn = {"conn_type": "gptproto", "host": emulator.url, "password": emulator.api_key}
    airflow = AirflowStack(
        tmp_path_factory.mktemp("airflow-home"),
        extra_env={"AIRFLOW_CONN_GPTPROTO_DEFAULT": json.dumps(conn)},
        wait_for_dags=(T2V, BATCH, I2V, CONSUMER, "gptproto_review_and_publish"),
        pools={"gptproto": 4},
        dags_paused=False,
    )
    try:
        airflow.start()
        print("\nAirflow stack ready:", {name: round(secs, 1) for name, secs in airflow.timings.items()})
        yield airflow
    finally:
        leftovers = airflow.stop()
        assert not leftovers, f"processes survived the stack: {leftovers}"


@pytest.fixture(scope="module")
def runs(stack: AirflowStack, emulator: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> E2ERuns:
    output_dir = tmp_path_factory.mktemp("videos")
    client = stack.client
    started = time.monotonic()
    run_ids = {
        T2V: client.trigger(T2V, {**T2V_CONF, "output_dir": str(output_dir)}),
        BATCH: client.trigger(BATCH, {"prompts": BATCH_PROMPTS, "output_dir": str(output_dir)}),
        I2V: client.trigger(I2V, {"output_dir": str(output_dir)}),
    }
    finished = client.wait_for_runs(list(run_ids.items()), timeout=RUN_TIMEOUT, poll=0.5)
    outcomes = {dag_id: finished[(dag_id, run_id)] for dag_id, run_id in run_ids.items()}
    return E2ERuns(stack, emulator, output_dir, outcomes, time.monotonic() - started)


def _generate_tis(runs: E2ERuns) -> list[tuple[str, RunOutcome, dict[str, Any]]]:
    return [
        (dag_id, outcome, ti) for dag_id, outcome in runs.outcomes.items() for ti in outcome.tis("generate")
    ]


def test_all_runs_succeed_with_every_task(runs: E2ERuns) -> None:
    print(f"\nproducer runs finished in {runs.seconds:.1f} s")
    scheduler_log = runs.stack.log_path("scheduler").read_text(errors="replace").splitlines()
    for dag_id, outcome in runs.outcomes.items():
        assert outcome.state == "success", dag_id
        assert {ti["state"] for ti in outcome.task_instances} == {"success"}, dag_id
        for ti in outcome.task_instances:
            # A retry is only acceptable when the known core race (see airflow_stack) caused it.
            if ti["try_number"] > 1:
                ti_ref = f"{dag_id}.{ti['task_id']} {outcome.run_id}"
                if ti["map_index"] >= 0:
                    ti_ref += f" map_index={ti['map_index']}"
                assert any(STATE_MISMATCH in line and ti_ref in line for line in scheduler_log), (
                    f"{ti_ref} needed {ti['try_number']} tries:\n{runs.stack.client.describe_run(outcome)}"
                )
        assert len(outcome.tis("generate")) == VIDEOS_PER_DAG[dag_id], dag_id
        assert len(outcome.tis("download")) == VIDEOS_PER_DAG[dag_id], dag_id
    batch_maps = [ti["map_index"] for ti in runs.outcomes[BATCH].tis("generate")]
    assert batch_maps == [0, 1, 2]
    assert runs.outcomes[T2V].ti("inspect_video")["state"] == "success"


def test_generate_tasks_deferred_to_the_real_triggerer(runs: E2ERuns) -> None:
    """Each generate TI was seen DEFERRED, and its log holds the part a triggerer process wrote."""
    client = runs.stack.client
    triggerer_jobs = {int(job["id"]) for job in client.jobs("TriggererJob")}
    for dag_id, outcome, ti in _generate_tis(runs):
        key = (ti["task_id"], ti["map_index"])
        assert "deferred" in outcome.observed_states[key], (dag_id, key, outcome.observed_states[key])
        # All tries: a retry (e.g. after the core race the harness hints at) reattaches without deferring.
        log = "\n".join(
            client.task_log(dag_id, outcome.run_id, "generate", attempt, ti["map_index"])
            for attempt in range(1, ti["try_number"] + 1)
        )
        # The triggerer writes its own file next to the task's log: <attempt>.log.trigger.<job id>.log
        writers = {int(job_id) for job_id in re.findall(r"\.log\.trigger\.(\d+)\.log", log)}
        assert writers, f"{dag_id}[{ti['map_index']}] log has no triggerer part:\n{log}"
        assert writers <= triggerer_jobs, (writers, triggerer_jobs)
        assert "Pausing task as DEFERRED" in log, log
        assert "s in the triggerer)" in log and "has succeeded" in log, log


def test_videos_exist_and_decode_with_the_requested_frame_size(runs: E2ERuns) -> None:
    for dag_id in (T2V, BATCH, I2V):
        saved = runs.downloads(dag_id)
        assert len(saved) == VIDEOS_PER_DAG[dag_id]
        for meta in saved:
            path = Path(meta["uri"].removeprefix("file://"))
            assert path.is_file(), meta
            assert runs.output_dir in path.parents, f"{path} not under the output_dir param"
            assert path.stat().st_size == meta["bytes"]
            assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"]
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                frames = 0
                for frame in container.decode(stream):
                    assert (frame.width, frame.height) == FRAME_SIZE[dag_id], (dag_id, path)
                    frames += 1
            assert frames > 1, f"{path} decoded to {frames} frames"


def test_asset_events_carry_the_video_metadata(runs: E2ERuns) -> None:
    client = runs.stack.client
    events = [e for e in client.asset_events(ASSET) if e["source_dag_id"] in runs.outcomes]
    assert len(events) == sum(VIDEOS_PER_DAG.values())
    by_dag: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        assert METADATA_KEYS.issubset(event["extra"]), event
        assert event["source_task_id"] == "download"
        assert event["source_run_id"] == runs.outcomes[event["source_dag_id"]].run_id
        by_dag.setdefault(event["source_dag_id"], []).append(event["extra"])
    for dag_id in (T2V, BATCH, I2V):
        assert sorted(m["sha256"] for m in by_dag[dag_id]) == sorted(
            m["sha256"] for m in runs.downloads(dag_id)
        )
    (t2v,) = by_dag[T2V]
    assert t2v["prompt"] == T2V_CONF["prompt"]
    assert t2v["seed"] == T2V_CONF["seed"]
    assert sorted(m["prompt"] for m in by_dag[BATCH]) == sorted(BATCH_PROMPTS)
    (i2v,) = by_dag[I2V]
    assert i2v["prompt"] == I2V_PROMPT  # the text item of the DAG's ``content``
    assert i2v["model"] == I2V_MODEL
    assert all(m["model"] for m in by_dag[BATCH] + by_dag[I2V])


def test_consumer_dag_ran_on_the_asset_events(runs: E2ERuns) -> None:
    """The consumer DAG was scheduled by the producers' events and catalogued what it was given.

    Airflow 3.3.2 (SQLite/MySQL path) can leave events that land within the same scheduler loop
    unconsumed until the next event arrives (apache/airflow#54659: the queue row keeps the first
    event's time). That is core scheduling, not the provider, so such leftovers only warn.
    """
    client = runs.stack.client
    wanted = {e["id"] for e in client.asset_events(ASSET) if e["source_dag_id"] in runs.outcomes}
    deadline = time.monotonic() + 60
    quiet_since: float | None = None
    while True:
        consumer_runs = client.dag_runs(CONSUMER)
        consumed = {
            run["dag_run_id"]: client.upstream_asset_events(CONSUMER, run["dag_run_id"])
            for run in consumer_runs
        }
        consumed_ids = {event["id"] for events in consumed.values() for event in events}
        settled = all(run["state"] in ("success", "failed") for run in consumer_runs) and not [
            q for q in client.queued_asset_events(ASSET) if q["dag_id"] == CONSUMER
        ]
        if not settled:
            quiet_since = None
        elif wanted <= consumed_ids:
            break
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 5:
            break  # nothing queued, nothing running: leftovers wait for a future event
        assert time.monotonic() < deadline, f"consumer runs did not settle: {consumer_runs}"
        time.sleep(1)
    assert consumer_runs, "the consumer DAG never ran"
    assert consumed_ids and consumed_ids <= wanted, (consumed_ids, wanted)
    for run in consumer_runs:
        assert run["run_type"] == "asset_triggered", run
        client.wait_for_run(CONSUMER, run["dag_run_id"], timeout=5)  # raises with logs unless success
        catalogued = client.xcom(CONSUMER, run["dag_run_id"], "catalogue")
        given = consumed[run["dag_run_id"]]
        assert sorted(m["task_id"] for m in catalogued) == sorted(e["extra"]["task_id"] for e in given)
        assert {m["uri"] for m in catalogued} == {e["extra"]["uri"] for e in given}
    if wanted - consumed_ids:
        warnings.warn(
            f"asset events {sorted(wanted - consumed_ids)} wait for the next event (apache/airflow#54659)",
            stacklevel=1,
        )


def test_emulator_saw_exactly_one_create_per_video(runs: E2ERuns) -> None:
    stats = runs.emulator.stats()
    videos = sum(VIDEOS_PER_DAG.values())
    assert stats["tasks_created"] == videos, stats
    assert stats["requests"]["create"] == videos, stats
    produced = {m["task_id"] for dag_id in (T2V, BATCH, I2V) for m in runs.downloads(dag_id)}
    assert produced == {task["id"] for task in runs.emulator.tasks()}
