"""End to end: ``dags_examples/gptproto_review_and_publish.py`` on real Airflow 3.3 processes.

Three prompts x three takes are generated against the emulator; the review task waits for input;
the test answers as the review page does, through Airflow's REST API as the api-server's admin
(``PATCH .../hitlDetails`` with Approve and a pick per prompt); then only the chosen takes are in
the publish folder (checked by sha256 against the batch manifest), and Airflow's HITL record and
the review's result both say who answered and when.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import airflow
import pytest
from packaging.version import Version

from airflow_provider_gptproto.emulator.harness import EmulatorProcess, start_emulator
from dev.airflow_stack import AirflowStack
from tests.support.reliability_stack import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.timeout(500),
    pytest.mark.skipif(
        Version(Version(airflow.__version__).base_version) < Version("3.3"),
        reason="the awaiting_input state of human-in-the-loop tasks is Airflow 3.3's",
    ),
]

DAG_ID = "gptproto_review_and_publish"
EXAMPLE = Path(__file__).resolve().parents[2] / "dags_examples" / f"{DAG_ID}.py"
PICKS = {"pick_1": "take 2", "pick_2": "take 3", "pick_3": "take 1"}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with start_emulator(queue_seconds=0.5, run_seconds=1.5) as emu:
        yield emu


@pytest.fixture(scope="module")
def stack(emulator: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    dags = tmp_path_factory.mktemp("review-dags")
    shutil.copy(EXAMPLE, dags)
    conn = {"conn_type": "gptproto", "host": emulator.url, "password": emulator.api_key}
    airflow_stack = AirflowStack(
        tmp_path_factory.mktemp("airflow-home"),
        dags_folder=dags,
        extra_env={"AIRFLOW_CONN_GPTPROTO_DEFAULT": json.dumps(conn)},
        wait_for_dags=(DAG_ID,),
        dags_paused=False,
    )
    try:
        airflow_stack.start()
        yield airflow_stack
    finally:
        leftovers = airflow_stack.stop()
        assert not leftovers, f"processes survived the stack: {leftovers}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_review_answered_through_the_rest_api_publishes_only_the_chosen_takes(
    stack: AirflowStack, emulator: EmulatorProcess, tmp_path: Path
) -> None:
    client = stack.client
    run_id = client.trigger(DAG_ID, {"output_dir": str(tmp_path)})
    hitl = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails"

    def review_state() -> str | None:
        state = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/review")["state"]
        assert state not in ("failed", "upstream_failed"), client.explain_run(DAG_ID, run_id)
        return state if state == "awaiting_input" else None

    wait_until(review_state, 240, "the review task to await input")

    # What the reviewer is asked: Approve/Reject and one pick per prompt among its three takes.
    asked = client.get(hitl)
    assert asked["options"] == ["Approve", "Reject"] and asked["response_received"] is False
    assert sorted(asked["params"]) == sorted(PICKS)
    for param in asked["params"].values():
        assert param["schema"]["enum"] == ["take 1", "take 2", "take 3"] and param["value"] == "take 1"
    assert f"/gptproto/review/{DAG_ID}/{quote(run_id, safe='')}/review?map_index=-1" in asked["body"]
    assert asked["body"].count(f"/runs/{quote(run_id, safe='')}/tasks/generate/plugin/gptproto-video") == 9

    # The shape the review page reads, and the batch's nine takes it comes from.
    request = client.xcom(DAG_ID, run_id, "review", key="gptproto_review")
    assert request["mode"] == "pick" and [g["param"] for g in request["groups"]] == list(PICKS)
    summary = client.xcom(DAG_ID, run_id, "generate")
    rows = [json.loads(line) for line in Path(summary["manifest"]).read_text().splitlines()]
    assert len(rows) == 9 and {r["status"] for r in rows} == {"succeeded"}
    assert len({r["seed"] for r in rows}) == 9  # every take its own seed
    by_take = {(r["prompt_index"], r["take"]): r for r in rows}

    answered = client.request(
        "PATCH", hitl, json={"chosen_options": ["Approve"], "params_input": PICKS}, expect=(200,)
    )
    assert answered["responded_by"]["name"] == stack.admin_user

    outcome = client.wait_for_run(DAG_ID, run_id, timeout=180, poll=0.5)
    assert outcome.ti("publish")["state"] == "success"

    # Only the chosen takes were published, byte for byte the reviewed files.
    chosen = {(n - 1, int(PICKS[f"pick_{n}"].split()[1])) for n in (1, 2, 3)}
    published = sorted((tmp_path / "review").glob("*/published/*"))
    assert len(published) == 3 and all(p.suffix == ".mp4" for p in published), published
    assert sorted(_sha256(p) for p in published) == sorted(by_take[key]["sha256"] for key in chosen)
    not_chosen = {r["sha256"] for key, r in by_take.items() if key not in chosen}
    assert not_chosen.isdisjoint(_sha256(p) for p in published)

    # Who answered and when: Airflow's HITL record and the review's result agree.
    record = client.get(hitl)
    assert record["response_received"] is True and record["chosen_options"] == ["Approve"]
    assert record["params_input"] == PICKS
    assert record["responded_by_user"]["name"] == stack.admin_user
    result: dict[str, Any] = client.xcom(DAG_ID, run_id, "review")
    assert result["kind"] == "review" and result["approved"] is True and result["timed_out"] is False
    assert result["responded_by"] == record["responded_by_user"]
    assert datetime.fromisoformat(result["responded_at"]) == datetime.fromisoformat(record["responded_at"])
    assert sorted((c["group"] - 1, c["take"]) for c in result["chosen"]) == sorted(chosen)

    # The publish result and its asset event name the published folder and files.
    publish = client.xcom(DAG_ID, run_id, "publish")
    assert sorted(p["sha256"] for p in publish["published"]) == sorted(_sha256(p) for p in published)
    folder = published[0].parent
    # The asset the alias resolved to is made on the fly (not "active" until a DAG names it): its
    # events are found by their source.
    events = client.get(
        "/assets/events", source_dag_id=DAG_ID, source_run_id=run_id, source_task_id="publish"
    )
    (event,) = events["asset_events"]
    assert event["uri"] == f"file://{folder}" and event["extra"]["published"] == publish["published"]
    assert emulator.stats()["tasks_created"] == 9  # nothing generated twice
