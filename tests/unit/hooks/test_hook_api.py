"""The hook's newcomer API: keyword requests, generate_video, a wait that rides out outages, no list."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from airflow.providers.common.compat.sdk import ObjectStoragePath
from responses.registries import OrderedRegistry

from airflow_provider_gptproto.exceptions import (
    GPTProtoAuthError,
    GPTProtoListUnavailableError,
    GPTProtoRequestError,
    GPTProtoTaskContentPolicyError,
    GPTProtoTaskExpiredError,
    GPTProtoTaskFailedError,
    GPTProtoTaskMayExistError,
    GPTProtoTimeoutError,
    GPTProtoVideoDownloadError,
    GPTProtoVideoURLExpiredError,
)
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.models import DEFAULT_MODEL, GenerationTask, TaskStatus, VideoGenerationRequest
from airflow_provider_gptproto.models.poll import MAX_POLL_BACKOFF_SECONDS, poll_backoff

from ..conftest import TASKS_URL, LogCapture
from ..fakes import FakeClock, patched_clock

CREATED = {"code": 0, "message": "Success", "data": {"task_id": "t1", "status": "pending"}}
VIDEO = "https://cdn.example.com/t1.mp4"


@pytest.fixture
def ordered() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True, registry=OrderedRegistry) as mock:
        yield mock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return patched_clock(monkeypatch)


def task_url(task_id: str = "t1") -> str:
    return f"{TASKS_URL}/{task_id}"


def task_b(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": "t1", "model": DEFAULT_MODEL, "status": status, **extra}


def sent_body(mock: responses.RequestsMock) -> dict[str, Any]:
    (post,) = [c.request for c in mock.calls if c.request.method == "POST"]
    body: dict[str, Any] = json.loads(post.body)
    return body


# ------------------------------------------------------------------------------- create_task


def test_create_task_takes_the_request_fields_as_keywords(
    hook: GPTProtoHook, ordered: responses.RequestsMock
) -> None:
    ordered.post(TASKS_URL, json=CREATED)
    task = hook.create_task(prompt="a red fox", duration="10s", dimension="1280:768", seed=7)
    assert task.task_id == "t1"
    body = sent_body(ordered)
    assert (body["prompt"], body["duration"], body["dimension"], body["seed"]) == (
        "a red fox",
        "10s",
        "1280:768",
        7,
    )


def test_keywords_override_a_mapping_and_all_three_forms_send_the_same(
    hook: GPTProtoHook, ordered: responses.RequestsMock
) -> None:
    for _ in range(3):
        ordered.post(TASKS_URL, json=CREATED)
    hook.create_task(prompt="a fox", seed=3)
    hook.create_task({"prompt": "a fox", "seed": 99}, seed=3)
    hook.create_task(VideoGenerationRequest.build(prompt="a fox", seed=3))
    bodies = [json.loads(c.request.body) for c in ordered.calls]
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["seed"] == 3


def test_create_task_rejects_a_misspelt_keyword_before_sending(
    hook: GPTProtoHook, ordered: responses.RequestsMock
) -> None:
    with pytest.raises(GPTProtoRequestError, match="promt") as caught:
        hook.create_task(promt="a fox")
    assert caught.value.field == "promt"
    assert len(ordered.calls) == 0


def test_a_request_object_plus_keywords_is_a_clear_type_error(hook: GPTProtoHook) -> None:
    with pytest.raises(TypeError, match="not both"):
        hook.create_task(VideoGenerationRequest.build(prompt="a fox"), seed=3)
    with pytest.raises(TypeError, match="create_task\\(prompt="):
        hook.create_task("a fox")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- generate_video


def test_generate_video_creates_waits_and_returns_the_finished_task(
    hook: GPTProtoHook, ordered: responses.RequestsMock, clock: FakeClock
) -> None:
    ordered.post(TASKS_URL, json=CREATED)
    ordered.get(task_url(), json=task_b("queued"))
    ordered.get(task_url(), json=task_b("running"))
    ordered.get(task_url(), json=task_b("succeeded", content={"video_url": VIDEO}))

    task = hook.generate_video(prompt="a red fox", duration="5s", poll_interval=3, timeout=60)

    assert task.status is TaskStatus.SUCCEEDED
    assert task.video_url == VIDEO
    assert sent_body(ordered)["prompt"] == "a red fox"
    assert clock.sleeps == [3, 3]


@pytest.mark.parametrize(
    ("status", "code", "raised"),
    [
        ("failed", "InternalServiceError", GPTProtoTaskFailedError),
        ("expired", "InternalServiceError", GPTProtoTaskExpiredError),  # a GPTProtoTaskFailedError
        ("cancelled", "InternalServiceError", GPTProtoTaskFailedError),
        ("failed", "OutputVideoSensitiveContentDetected", GPTProtoTaskContentPolicyError),
    ],
)
def test_generate_video_raises_when_the_task_ends_without_a_video(
    hook: GPTProtoHook,
    ordered: responses.RequestsMock,
    clock: FakeClock,
    status: str,
    code: str,
    raised: type[GPTProtoTaskFailedError],
) -> None:
    ordered.post(TASKS_URL, json=CREATED)
    ordered.get(task_url(), json=task_b(status, error={"code": code, "message": "render farm on fire"}))
    with pytest.raises(GPTProtoTaskFailedError) as caught:
        hook.generate_video(prompt="a fox")
    assert type(caught.value) is raised
    assert (caught.value.task_id, caught.value.status) == ("t1", status)
    assert "render farm on fire" in str(caught.value)


def test_cancel_after_timeout_logs_a_refusal_instead_of_raising(
    hook: GPTProtoHook, ordered: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    ordered.delete(task_url(), status=400, json={"error": {"code": "InvalidParameter", "message": "running"}})
    hook.cancel_after_timeout("t1")  # the timeout stays the error the caller raises
    assert "GPTProto task t1 could not be cancelled" in capsys.readouterr().out
    assert [c.request.method for c in ordered.calls] == ["DELETE"]


def test_generate_video_cancels_a_task_still_queued_at_the_timeout(
    hook: GPTProtoHook, ordered: responses.RequestsMock, clock: FakeClock
) -> None:
    ordered.post(TASKS_URL, json=CREATED)
    ordered.get(task_url(), json=task_b("queued"))
    ordered.get(task_url(), json=task_b("queued"))
    ordered.delete(task_url(), json={})
    with pytest.raises(GPTProtoTimeoutError, match=r"t1 did not finish by its deadline \(still pending"):
        hook.generate_video(prompt="a fox", poll_interval=10, timeout=15)
    assert [c.request.method for c in ordered.calls] == ["POST", "GET", "GET", "DELETE"]


def test_generate_video_checks_the_request_before_paying(
    hook: GPTProtoHook, ordered: responses.RequestsMock
) -> None:
    with pytest.raises(GPTProtoRequestError, match="dimension must be one of"):
        hook.generate_video(prompt="a fox", dimension="1920:1080")
    assert len(ordered.calls) == 0


def _envelope(status: str, **data: Any) -> dict[str, Any]:
    """GPTProto's own get-task reply (shape A), which reports no seed."""
    return {"code": 0, "message": "Success", "data": {"task_id": "t1", "status": status, **data}}


def test_generate_video_returns_the_seed_asked_for_when_the_reply_has_none(
    hook: GPTProtoHook, ordered: responses.RequestsMock, clock: FakeClock
) -> None:
    ordered.post(TASKS_URL, json=CREATED)
    ordered.get(task_url(), json=_envelope("completed", video_url=VIDEO))

    task = hook.generate_video(prompt="a red fox", seed=1234)

    assert task.seed == 1234 and sent_body(ordered)["seed"] == 1234


def test_generate_video_without_a_seed_draws_one_sends_it_and_reports_it(
    hook: GPTProtoHook, ordered: responses.RequestsMock, clock: FakeClock
) -> None:
    ordered.post(TASKS_URL, json=CREATED)
    ordered.get(task_url(), json=_envelope("completed", video_url=VIDEO))

    task = hook.generate_video(prompt="a red fox")

    assert task.seed is not None and task.seed == sent_body(ordered)["seed"]


def test_a_seed_the_server_reports_wins_and_minus_one_is_left_to_the_server(
    hook: GPTProtoHook, ordered: responses.RequestsMock, clock: FakeClock
) -> None:
    ordered.post(TASKS_URL, json=CREATED)
    ordered.get(task_url(), json=task_b("succeeded", content={"video_url": VIDEO}, seed=8080))

    task = hook.generate_video(prompt="a red fox", seed=-1, ratio="16:9")

    assert sent_body(ordered)["seed"] == -1 and task.seed == 8080


def test_generate_video_checks_the_destination_before_paying(
    hook: GPTProtoHook, ordered: responses.RequestsMock
) -> None:
    from airflow.sdk import ObjectStoragePath

    for destination in ("s3://aws_default@bucket/x.mp4", ObjectStoragePath("s3://aws_default@bucket/x.mp4")):
        with pytest.raises(
            GPTProtoRequestError, match=r"pip install \"apache-airflow-providers-amazon\[s3fs\]\""
        ) as err:
            hook.generate_video(prompt="a fox", destination=destination)
        assert err.value.field == "destination"
    assert len(ordered.calls) == 0  # nothing created, nothing paid


def test_generate_video_refuses_a_folder_as_destination_before_paying(
    hook: GPTProtoHook, ordered: responses.RequestsMock, tmp_path: Path
) -> None:
    for destination in (f"{tmp_path}/videos/", str(tmp_path)):
        with pytest.raises(GPTProtoRequestError, match="is a folder; name the video file") as err:
            hook.generate_video(prompt="a fox", destination=destination)
        assert err.value.field == "destination"
    assert len(ordered.calls) == 0  # nothing created, nothing paid


def test_download_to_a_filesystem_that_is_not_installed_names_the_package(
    hook: GPTProtoHook, ordered: responses.RequestsMock
) -> None:
    from airflow.sdk import ObjectStoragePath

    with pytest.raises(GPTProtoRequestError, match=r"amazon\[s3fs\]") as err:
        hook.download_video(VIDEO, ObjectStoragePath("s3://aws_default@bucket/x.mp4"))
    assert err.value.field == "destination"
    assert len(ordered.calls) == 0


def test_generate_video_with_a_destination_stores_the_video_and_describes_it(
    hook: GPTProtoHook, ordered: responses.RequestsMock, clock: FakeClock, tmp_path: Any
) -> None:
    ordered.post(TASKS_URL, json=CREATED)
    ordered.get(task_url(), json=_envelope("completed", video_url=VIDEO))
    ordered.get(VIDEO, body=b"\x00\x00\x00\x18ftypmp42 a video", content_type="video/mp4")
    target = tmp_path / "new" / "folder" / "fox.mp4"  # missing folders are made

    saved = hook.generate_video(prompt="a red fox", seed=1234, destination=str(target))

    assert target.read_bytes().endswith(b"a video")
    assert (saved.task_id, saved.seed, saved.uri) == ("t1", 1234, str(target))
    result = saved.to_dict()
    assert (
        result["seed"] == 1234 and result["uri"] == str(target) and result["bytes"] == target.stat().st_size
    )
    assert result["request"]["prompt"] == "a red fox" and json.loads(json.dumps(result)) == result
    assert result["kind"] == "saved_video" and None not in result.values()


# ----------------------------------------------------------------- download: one fresh URL on expiry

MP4 = b"\x00\x00\x00\x18ftypmp42 a video"
FRESH = "https://cdn.example.com/t1-fresh.mp4"


def finished(video_url: str | None = VIDEO) -> GenerationTask:
    return GenerationTask(task_id="t1", status=TaskStatus.SUCCEEDED, video_url=video_url)


def test_download_task_video_refetches_the_task_once_when_its_url_expired(
    hook: GPTProtoHook, ordered: responses.RequestsMock, tmp_path: Path
) -> None:
    ordered.get(VIDEO, status=403, body=b"AccessDenied: Request has expired")
    ordered.get(task_url(), json=_envelope("completed", video_url=FRESH))
    ordered.get(FRESH, body=MP4, content_type="video/mp4")
    target = tmp_path / "t1.mp4"

    video = hook.download_task_video(finished(), ObjectStoragePath(str(target)), max_bytes=10_000)

    assert target.read_bytes() == MP4 and video.bytes == len(MP4)
    assert [c.request.url for c in ordered.calls] == [VIDEO, task_url(), FRESH]


@pytest.mark.parametrize("fresh_url", [None, VIDEO], ids=["no-fresh-url", "expired-again"])
def test_download_task_video_gives_up_after_one_refetch(
    hook: GPTProtoHook, tmp_path: Path, fresh_url: str | None
) -> None:
    with responses.RequestsMock() as mock:
        mock.get(VIDEO, status=410, body=b"Gone")
        mock.get(task_url(), json=_envelope("completed", video_url=fresh_url))
        with pytest.raises(GPTProtoVideoURLExpiredError):
            hook.download_task_video(finished(), ObjectStoragePath(str(tmp_path / "t1.mp4")))
        assert [c.request.url for c in mock.calls].count(task_url()) == 1  # the task is read once
    assert list(tmp_path.iterdir()) == []


def test_download_task_video_without_a_url_names_the_task_and_sends_nothing(
    hook: GPTProtoHook, tmp_path: Path
) -> None:
    with responses.RequestsMock() as mock:
        with pytest.raises(GPTProtoVideoDownloadError, match="t1 succeeded but has no video URL"):
            hook.download_task_video(finished(None), ObjectStoragePath(str(tmp_path / "t1.mp4")))
        assert len(mock.calls) == 0


# ------------------------------------------------------------------------------- wait: outages


def test_wait_rides_out_an_outage_longer_than_retry_limit_with_the_trigger_backoff(
    hook: GPTProtoHook, ordered: responses.RequestsMock, clock: FakeClock, logs: LogCapture
) -> None:
    ordered.get(task_url(), json=task_b("running"))
    for _ in range(7):  # the fixture connection allows 3 attempts per call
        ordered.get(task_url(), status=503, json={"error": {"message": "overloaded"}})
    ordered.get(task_url(), json=task_b("succeeded", content={"video_url": VIDEO}))

    task = hook.wait_for_task("t1", poll_interval=2, timeout=3600)

    assert task.video_url == VIDEO
    assert len(ordered.calls) == 9  # one request per check: no retries stacked inside a check
    assert clock.sleeps == [2] + [poll_backoff(2, n) for n in range(1, 8)]
    assert clock.sleeps[1:] == [4, 8, 16, 32, 64, 128, 256]
    text = logs.text()  # Airflow 3.0 writes each record twice here (two handlers): count distinct ones
    assert sorted(set(re.findall(r"transient, failure (\d+) in a row", text)), key=int) == [
        str(n) for n in range(1, 8)
    ]
    assert "failure 7 in a row, next check in 256.0 s" in text
    assert "works again after 7 failed checks" in text


def test_wait_gives_up_at_the_deadline_naming_the_last_error(hook: GPTProtoHook, clock: FakeClock) -> None:
    with responses.RequestsMock() as mock:
        mock.get(task_url(), status=502, body="<html>bad gateway</html>")
        with pytest.raises(
            GPTProtoTimeoutError, match=r"did not finish by its deadline \(never seen.*HTTP 502"
        ) as caught:
            hook.wait_for_task("t1", poll_interval=5, timeout=100)
    assert "t1" in str(caught.value)
    assert sum(clock.sleeps) <= 100
    assert clock.sleeps == [10, 20, 40, 30]  # the next pause (80 s) is cut to the deadline


def test_wait_honours_retry_after_when_it_is_longer(hook: GPTProtoHook, clock: FakeClock) -> None:
    with responses.RequestsMock(registry=OrderedRegistry) as mock:
        mock.get(task_url(), status=429, headers={"Retry-After": "45"}, json={"error": {"message": "slow"}})
        mock.get(task_url(), json=task_b("succeeded"))
        hook.wait_for_task("t1", poll_interval=1, timeout=600)
    assert clock.sleeps == [45]


def test_wait_stops_at_once_on_a_permanent_error(hook: GPTProtoHook, clock: FakeClock) -> None:
    with responses.RequestsMock() as mock:
        mock.get(task_url(), status=401, json={"error": {"message": "bad key", "code": "invalid_api_key"}})
        with pytest.raises(GPTProtoAuthError):
            hook.wait_for_task("t1", poll_interval=1, timeout=600)
        assert len(mock.calls) == 1
    assert clock.sleeps == []


def test_backoff_is_capped() -> None:
    assert poll_backoff(10, 50) == MAX_POLL_BACKOFF_SECONDS
    assert poll_backoff(10, 1) == 20


# ------------------------------------------------------------------------------- no list endpoint


@pytest.mark.parametrize("status", [404, 405])
def test_a_missing_list_endpoint_is_named_not_a_bare_404(hook: GPTProtoHook, status: int) -> None:
    with responses.RequestsMock() as mock:
        mock.get(TASKS_URL, status=status, json={"detail": "Not Found"})
        with pytest.raises(GPTProtoListUnavailableError, match="has no list endpoint") as caught:
            hook.find_tasks_created_since(0, model=DEFAULT_MODEL)
    assert f"answered HTTP {status}" in str(caught.value)


def test_a_lost_create_without_a_list_endpoint_says_what_to_do(hook: GPTProtoHook) -> None:
    with responses.RequestsMock() as mock:
        mock.post(TASKS_URL, status=500, json={"error": {"message": "oops"}})
        mock.get(TASKS_URL, status=404, json={"detail": "Not Found"})
        with pytest.raises(GPTProtoTaskMayExistError) as caught:
            hook.create_task(prompt="a fox")
    message = str(caught.value)
    assert "no list endpoint" in message
    assert "look for it in your GPTProto account" in message
    assert "404" not in message.split("Not resubmitting.")[1]
