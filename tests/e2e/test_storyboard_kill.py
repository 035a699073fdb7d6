"""End to end: storyboards on real Airflow, under faults and a worker SIGKILLed mid-storyboard.

Real processes (api-server, scheduler, dag-processor, triggerer, LocalExecutor) run against the
emulator's upstream dialect, which reports ``last_frame_url``:

* ``dags_examples/gptproto_storyboard.py`` (six chained shots): once two shots are stored, the
  emulator holds the next video download (a latency fault), so the kill lands in the worker phase
  of the third shot. The retry resumes from the journal: one create per shot, one 30-second video.
* ``dags/gptproto_e2e_storyboard_cuts.py``: the same six shots chained and independent, while
  status reads fail with 503 and a download breaks off; the cuts of the chained video are smooth,
  those of the independent one are not.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import av
import pytest
import requests
from PIL import Image, ImageChops

from airflow_provider_gptproto.emulator.harness import EmulatorProcess, start_emulator
from dev.airflow_stack import AirflowStack
from tests.support.reliability_stack import sigkill_running_task, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(500)]

DAG_ID = "gptproto_storyboard"
CUTS_DAG_ID = "gptproto_e2e_storyboard_cuts"
EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"
CUTS_DAG = Path(__file__).parent / "dags" / f"{CUTS_DAG_ID}.py"
SHOTS, SECONDS, FPS = 6, 5, 8  # the example's shots and their length; the emulator's frame rate


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with start_emulator(dialect="ark", queue_seconds=1.0, run_seconds=2.0) as emu:
        yield emu


@pytest.fixture(scope="module")
def stack(emulator: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    dags = tmp_path_factory.mktemp("storyboard-dags")
    shutil.copy(EXAMPLES / "gptproto_storyboard.py", dags)
    shutil.copytree(EXAMPLES / "storyboards", dags / "storyboards")
    shutil.copy(CUTS_DAG, dags)
    conn = {"conn_type": "gptproto", "host": emulator.url, "password": emulator.api_key}
    airflow = AirflowStack(
        tmp_path_factory.mktemp("airflow-home"),
        dags_folder=dags,
        extra_env={"AIRFLOW_CONN_GPTPROTO_DEFAULT": json.dumps(conn)},
        wait_for_dags=(DAG_ID, CUTS_DAG_ID),
        dags_paused=False,
    )
    try:
        airflow.start()
        yield airflow
    finally:
        leftovers = airflow.stop()
        assert not leftovers, f"processes survived the stack: {leftovers}"


def test_worker_killed_during_the_third_shot_resumes_without_paying_twice(
    stack: AirflowStack, emulator: EmulatorProcess, tmp_path: Path
) -> None:
    client = stack.client
    run_id = client.trigger(DAG_ID, {"output_dir": str(tmp_path)})
    out = tmp_path / "storyboard" / run_id.replace(":", "_").replace("+", "_")

    wait_until(lambda: len(list(out.glob("0*.mp4"))) >= 2, 240, "two shots stored")
    rule = emulator.add_fault(endpoint="video", action="latency", latency_seconds=120, count=1)
    wait_until(
        lambda: any(r["id"] == rule["id"] and r["applied"] == 1 for r in emulator.faults()),
        120,
        "the third shot's download",
    )
    sigkill_running_task(stack, DAG_ID, run_id, "storyboard")

    outcome = client.wait_for_run(DAG_ID, run_id, timeout=400, poll=1.0)
    storyboard = outcome.ti("storyboard")
    assert storyboard["try_number"] == 2, storyboard
    creates = Counter(t["prompt"] for t in emulator.tasks())
    assert len(creates) == SHOTS and set(creates.values()) == {1}, creates  # one create per shot
    assert "Resuming batch" in client.task_log(DAG_ID, run_id, "storyboard", 2)

    result = client.xcom(DAG_ID, run_id, "storyboard")
    assert result["kind"] == "storyboard" and result["shots"] == SHOTS, result
    with av.open(str(out / "storyboard.mp4")) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == SHOTS * SECONDS * FPS - (SHOTS - 1)  # each shared frame shown once
    document = json.loads((out / "storyboard.json").read_text())
    assert [shot["key"] for shot in document["shots"]] == sorted(shot["key"] for shot in document["shots"])
    assert document["shots"][-1]["end"] == pytest.approx(result["duration"])
    assert not list(out.rglob("*.part")), "a partial file survived the kill"
    assert client.xcom(DAG_ID, run_id, "report")["video"] == str(out / "storyboard.mp4")

    # The task's Video tab, from the real api-server: the stitched video and its six shots' times.
    tab = requests.get(
        f"{stack.base_url}/gptproto/ti/{DAG_ID}/{quote(run_id, safe='')}/storyboard",
        headers={"Authorization": f"Bearer {client.token()}"},
        timeout=30,
    )
    assert tab.status_code == 200 and "<caption>Shots</caption>" in tab.text, tab.text[:500]
    for shot in document["shots"]:
        assert f"{shot['end']:.2f} s" in tab.text and shot["prompt"] in tab.text
    print(f"\nworker SIGKILLed during shot 3; try 2 resumed; {SHOTS} shots, {sum(creates.values())} creates")


def _frames(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0..255."""
    pixels = list(ImageChops.difference(a, b).convert("L").getdata())
    return sum(pixels) / len(pixels)


def test_chained_shots_cut_smoothly_under_faults_and_independent_ones_do_not(
    stack: AirflowStack, emulator: EmulatorProcess, tmp_path: Path
) -> None:
    emulator.add_fault(endpoint="get", action="status", status=503, count=4)
    emulator.add_fault(endpoint="video", action="truncate", count=1)
    before = len(emulator.tasks())
    run_id = stack.client.trigger(CUTS_DAG_ID, {"output_dir": str(tmp_path)})
    outcome = stack.client.wait_for_run(CUTS_DAG_ID, run_id, timeout=400, poll=1.0)
    assert all(outcome.ti(task)["state"] == "success" for task in ("last_frame", "none")), outcome
    assert len(emulator.tasks()) - before == 2 * SHOTS  # the faults cost no create
    assert all(rule["applied"] == rule["count"] for rule in emulator.faults()), emulator.faults()

    cuts: dict[str, list[float]] = {}
    for continuity, shared in (("last_frame", SHOTS - 1), ("none", 0)):
        out = tmp_path / continuity
        frames = _frames(out / "storyboard.mp4")
        shots = json.loads((out / "storyboard.json").read_text())["shots"]
        assert len(frames) == sum(shot["frames"] for shot in shots) == SHOTS * 2 * FPS - shared
        starts = [round(shot["start"] * FPS) for shot in shots[1:]]  # first frame of each later shot
        cuts[continuity] = [_difference(frames[at - 1], frames[at]) for at in starts]
    assert max(cuts["last_frame"]) * 10 < min(cuts["none"]), cuts
    print(f"\nmean pixel difference at the cuts: chained {cuts['last_frame']}, independent {cuts['none']}")
