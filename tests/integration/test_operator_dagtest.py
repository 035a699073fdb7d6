"""GPTProtoGenerateVideoOperator through DAG.test() against the emulator over loopback."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.dagrun import run_dag

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_generate_succeeds_and_publishes_results(emulator: Any, mode: str) -> None:
    result = run_dag(f"it_generate_{mode}", prompt="a calm lake at dusk", seed=42)

    assert result.state == "success"
    task_id = result.xcom("generate", "gptproto_task_id")
    returned = result.xcom("generate")
    assert returned["task_id"] == task_id
    assert returned["status"] == "succeeded"
    assert returned["video_url"].startswith(emulator.url)
    assert returned["request"]["prompt"] == "a calm lake at dusk"
    assert returned["request"]["seed"] == 42
    assert result.xcom("generate", "gptproto_video_url") == returned["video_url"]
    # The "GPTProto video" button: Airflow stores what the link returned after the last phase.
    assert result.xcom("generate", "_link_GPTProtoVideoLink") == returned["video_url"]
    assert emulator.stats()["tasks_created"] == 1


def _remote_statuses(emulator: Any) -> list[str]:
    return [t["status"] for t in emulator.tasks()]


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_timeout_cancels_the_remote_task_and_fails(emulator: Any, mode: str) -> None:
    emulator.configure(queue_seconds=30)

    result = run_dag(f"it_timeout_{mode}")

    assert result.state == "failed"
    assert emulator.stats()["tasks_created"] == 1
    assert _remote_statuses(emulator) == ["cancelled"]


def test_content_policy_failure_is_not_retried(emulator: Any) -> None:
    result = run_dag("it_content_policy")

    assert result.state == "failed"
    assert result.tries("generate") == 1  # retries=2 in the DAG, but policy rejections fail fast
    assert emulator.stats()["tasks_created"] == 1


def test_expired_task_fails_then_retry_submits_anew(emulator: Any) -> None:
    # Expiry is not content policy, so the retry runs and (the marker sticking) expires again.
    result = run_dag("it_generate_sync", prompt="takes forever [[expire]]")

    assert result.state == "failed"
    assert result.tries("generate") == 2
    assert emulator.stats()["tasks_created"] == 2


def test_retry_reattaches_instead_of_paying_twice(emulator: Any) -> None:
    from tests.integration.versions import HAS_TASK_STATE_STORE

    emulator.configure(queue_seconds=1)
    # The first status check after the create is refused: try 1 fails after the task exists.
    emulator.add_fault(endpoint="get", action="status", status=401, count=1)

    result = run_dag("it_generate_sync")

    assert result.state == "success"
    assert result.tries("generate") == 2
    # Airflow 3.3's task state store makes try 2 reattach; older 3.x has no store (documented).
    assert emulator.stats()["tasks_created"] == (1 if HAS_TASK_STATE_STORE else 2)
    assert result.xcom("generate")["status"] == "succeeded"


def test_task_cancelled_outside_airflow_is_resubmitted_by_the_retry(emulator: Any) -> None:
    import threading

    from airflow_provider_gptproto.emulator.harness import wait_for

    emulator.configure(queue_seconds=2)

    def cancel_first_task() -> None:
        wait_for(lambda: emulator.tasks(), timeout=20)
        task_id = emulator.tasks()[0]["id"]
        import requests

        requests.delete(
            f"{emulator.api_url}/contents/generations/tasks/{task_id}",
            headers={"Authorization": f"Bearer {emulator.api_key}"},
            timeout=5,
        ).raise_for_status()

    canceller = threading.Thread(target=cancel_first_task)
    canceller.start()
    try:
        result = run_dag("it_generate_sync")
    finally:
        canceller.join()

    assert result.state == "success"
    assert result.tries("generate") == 2
    assert emulator.stats()["tasks_created"] == 2
    assert sorted(_remote_statuses(emulator)) == ["cancelled", "succeeded"]


def test_wait_for_completion_false_only_creates(emulator: Any) -> None:
    emulator.configure(queue_seconds=30)

    result = run_dag("it_no_wait")

    assert result.state == "success"
    assert result.xcom("generate")["status"] == "pending"
    assert _remote_statuses(emulator) == ["queued"]


def test_dynamic_mapping_creates_one_task_per_prompt(emulator: Any) -> None:
    result = run_dag("it_mapped", prompts=["one", "two", "three"])

    assert result.state == "success"
    prompts = sorted(result.xcom("generate", map_index=i)["request"]["prompt"] for i in range(3))
    assert prompts == ["one", "three", "two"]
    assert emulator.stats()["tasks_created"] == 3


def test_a_mapped_tasks_result_and_video_tab_name_the_seed_of_its_video(emulator: Any) -> None:
    """The emulator's default replies (GPTProto's envelope) report no seed; none was asked for."""
    from airflow.utils.session import create_session

    from airflow_provider_gptproto.plugins.records import task_records

    result = run_dag("it_mapped", prompts=["one", "two"])

    assert result.state == "success"
    seeds = {t["id"]: t["seed"] for t in emulator.tasks()}  # what each video was made with
    for index in range(2):
        returned = result.xcom("generate", map_index=index)
        assert returned["seed"] == seeds[returned["task_id"]]
        with create_session() as session:
            (record,) = task_records(session, "it_mapped", result.run_id, "generate", index)
        assert record.metadata()["Seed"] == seeds[returned["task_id"]]


def test_taskflow_prompt_from_an_upstream_task(emulator: Any) -> None:
    result = run_dag("it_taskflow", subject="otter")

    assert result.state == "success"
    assert result.xcom("generate")["request"]["prompt"] == "An otter floating on its back"


def test_transient_faults_are_ridden_out(emulator: Any) -> None:
    emulator.add_fault(endpoint="create", action="rate_limit", retry_after=0.2, count=2)
    emulator.add_fault(endpoint="get", action="status", status=503, count=3)
    emulator.add_fault(endpoint="get", action="malformed_json", count=1)

    result = run_dag("it_generate_defer")

    assert result.state == "success"
    assert result.tries("generate") == 1
    assert emulator.stats()["tasks_created"] == 1


def test_rendered_bad_value_fails_before_any_request(emulator: Any) -> None:
    result = run_dag("it_generate_sync", seed=0)

    assert result.state == "failed"
    assert emulator.stats()["requests"]["create"] == 0


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_sensor_waits_for_an_existing_task(emulator: Any, mode: str) -> None:
    created = run_dag("it_no_wait", prompt="made elsewhere")
    task_id = created.xcom("generate", "gptproto_task_id")

    result = run_dag(f"it_sensor_{mode}", task_id=task_id)

    assert result.state == "success"
    assert result.xcom("wait")["task_id"] == task_id
    assert result.xcom("wait")["status"] == "succeeded"
    assert emulator.stats()["tasks_created"] == 1


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_sensor_fails_on_a_failed_task(emulator: Any, mode: str) -> None:
    created = run_dag("it_no_wait", prompt="bad [[fail:policy]]")
    task_id = created.xcom("generate", "gptproto_task_id")

    result = run_dag(f"it_sensor_{mode}", task_id=task_id)

    assert result.state == "failed"


def test_download_lands_a_verified_mp4(emulator: Any, tmp_path: Any) -> None:
    import av

    result = run_dag("it_download", prompt="a lighthouse", dest=f"{tmp_path}/videos/")

    assert result.state == "success"
    saved = result.xcom("download")
    path = tmp_path / "videos" / f"{saved['task_id']}.mp4"
    assert saved["uri"].endswith(str(path))
    assert path.stat().st_size == saved["bytes"]
    assert saved["prompt"] == "a lighthouse"
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.width == 768
    # The video and its poster frame (PyAV is installed here), no temporary file left.
    poster = path.with_suffix(".jpg")
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == sorted([path.name, poster.name])
    assert saved["poster_uri"].endswith(str(poster))


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_takes_return_three_videos_with_distinct_seeds(emulator: Any, mode: str) -> None:
    result = run_dag(f"it_generate_takes_{mode}", prompt="three takes of a lake")

    assert result.state == "success", result.tis
    takes = result.xcom("generate")
    made = {t["id"]: t for t in emulator.tasks()}
    assert [(r["take"], r["takes"], r["status"]) for r in takes] == [(k, 3, "succeeded") for k in (1, 2, 3)]
    assert len({r["task_id"] for r in takes}) == 3 and set(made) == {r["task_id"] for r in takes}
    assert [r["seed"] for r in takes] == [made[r["task_id"]]["seed"] for r in takes]  # the seed sent
    assert len({r["seed"] for r in takes}) == 3 and all(r["request"]["seed"] == r["seed"] for r in takes)
    assert all(r["video_url"].startswith(emulator.url) for r in takes)
    assert emulator.stats()["tasks_created"] == 3


def test_a_retry_of_takes_reattaches_every_take_instead_of_paying_again(emulator: Any) -> None:
    from tests.integration.versions import HAS_TASK_STATE_STORE

    emulator.configure(queue_seconds=1)
    # The first read of the takes' statuses is refused: try 1 fails after all three tasks exist.
    emulator.add_fault(endpoint="list", action="status", status=401, count=1)

    result = run_dag("it_generate_takes_sync", prompt="retried takes")

    assert result.state == "success", result.tis
    assert result.tries("generate") == 2
    assert emulator.stats()["tasks_created"] == (3 if HAS_TASK_STATE_STORE else 6)
    assert [r["take"] for r in result.xcom("generate")] == [1, 2, 3]


def test_a_lost_create_reply_of_a_take_is_never_paid_again(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from tests.integration.versions import HAS_TASK_STATE_STORE

    if not HAS_TASK_STATE_STORE:
        pytest.skip("without Airflow 3.3's task state store every try starts afresh (documented)")
    conn = {
        "conn_type": "gptproto",
        "host": emulator.url,
        "password": emulator.api_key,
        "extra": {"timeout": 2},
    }
    monkeypatch.setenv("AIRFLOW_CONN_GPTPROTO_DEFAULT", json.dumps(conn))  # a lost create settles in 4 s
    # Take 2's create lands on the server, but its reply is lost.
    emulator.add_fault(endpoint="create", action="drop_after", skip=1, count=1)

    result = run_dag("it_generate_takes_sync", prompt="a lost take")

    assert result.state == "failed"  # the retry finds a task it cannot tell from its own: no new create
    assert result.tries("generate") == 2
    assert (
        emulator.stats()["tasks_created"] == 2
    )  # take 1, and take 2 whose reply was lost; never take 2 again
