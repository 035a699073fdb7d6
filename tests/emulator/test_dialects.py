"""The three response dialects and the response variants (id location, numbers as strings, fps typo)."""

from __future__ import annotations

import re
from typing import Any

import pytest

DONE_NOW = "[[queue:0]] [[run:0]]"
STAY_QUEUED = "[[queue:60]]"
UPSTREAM = {"model": "doubao-seedance-1-0-pro-250528", "content": [{"type": "text", "text": "a cat"}]}


def test_ark_create_answers_only_the_id(api: Any, emu: Any) -> None:
    emu.configure(dialect="ark")
    body = api.create(UPSTREAM).json()
    assert list(body) == ["id"] and re.fullmatch(r"cgt-\d{14}-[a-z0-9]{5}", body["id"])


def test_ark_task_object_in_each_state(api: Any, emu: Any) -> None:
    emu.configure(dialect="ark")

    def create(text: str, **fields: Any) -> str:
        body = {**UPSTREAM, "content": [{"type": "text", "text": text}], **fields}
        return str(api.create(body).json()["id"])

    queued_id, running_id = create(STAY_QUEUED), create("[[queue:0]] [[run:60]] busy")
    task_id = create(
        f"{DONE_NOW} cat", ratio="16:9", resolution="480p", duration=4, seed=99, return_last_frame=True
    )
    queued = api.get(queued_id).json()
    assert queued["status"] == "queued" and queued["error"] is None and "content" not in queued
    assert queued["created_at"] == queued["updated_at"] and isinstance(queued["created_at"], int)
    api.wait_status(running_id, "running")
    running = api.get(running_id).json()
    assert running["status"] == "running" and "content" not in running and "usage" not in running
    api.wait_status(task_id, "succeeded")
    done = api.get(task_id).json()
    assert done["id"] == task_id and done["model"] == UPSTREAM["model"] and done["status"] == "succeeded"
    assert done["seed"] == 99 and done["resolution"] == "480p" and done["ratio"] == "16:9"
    assert done["duration"] == 4 and done["framespersecond"] == 24 and "frames" not in done
    assert done["content"]["video_url"].split("?")[0].endswith(f"/_emulator/videos/{task_id}.mp4")
    assert done["content"]["last_frame_url"].split("?")[0].endswith(f"/_emulator/videos/{task_id}.png")
    tokens = 864 * 480 * 24 * 4 // 1024
    assert done["usage"] == {"completion_tokens": tokens, "total_tokens": tokens}
    assert done["updated_at"] >= done["created_at"] and done["error"] is None
    assert done["service_tier"] == "default" and done["execution_expires_after"] == 172800


def test_ark_failed_task_has_error_object(api: Any, emu: Any) -> None:
    emu.configure(dialect="ark")
    task_id = api.new_task(f"{DONE_NOW} [[fail:policy]]")
    api.wait_status(task_id, "failed")
    body = api.get(task_id).json()
    assert body["status"] == "failed" and "content" not in body
    assert body["error"]["code"] == "OutputVideoSensitiveContentDetected" and body["error"]["message"]
    other = api.new_task(f"{DONE_NOW} [[fail:InternalServiceError]]")
    api.wait_status(other, "failed")
    assert api.get(other).json()["error"]["code"] == "InternalServiceError"


def test_ark_expired_and_cancelled(api: Any, emu: Any) -> None:
    emu.configure(dialect="ark")
    expired = api.new_task(f"{DONE_NOW} [[expire]]")
    cancelled = api.new_task(f"{STAY_QUEUED} x")
    api.delete(cancelled)
    api.wait_status(expired, "expired")
    assert api.get(expired).json()["status"] == "expired"
    assert api.get(cancelled).json()["status"] == "cancelled"


def test_ark_frames_replace_duration(api: Any, emu: Any) -> None:
    emu.configure(dialect="ark")
    task_id = api.create({**UPSTREAM, "frames": 49}).json()["id"]
    body = api.get(task_id).json()
    assert body["frames"] == 49 and "duration" not in body


def test_stringly_numbers_variant(api: Any, emu: Any) -> None:
    emu.configure(dialect="ark", stringly_numbers=True)
    task_id = api.new_task(seed=16108)
    body = api.get(task_id).json()
    assert body["seed"] == "16108"
    assert isinstance(body["created_at"], str) and body["created_at"].isdigit()
    assert isinstance(body["updated_at"], str) and isinstance(body["duration"], int)
    assert api.list().json()["items"][0]["seed"] == "16108"


def test_fps_field_typo_variant(api: Any, emu: Any) -> None:
    emu.configure(dialect="ark", fps_field="framepersecond")
    body = api.get(api.new_task()).json()
    assert body["framepersecond"] == 24 and "framespersecond" not in body


def test_predictions_dialect(api: Any, emu: Any) -> None:
    emu.configure(dialect="predictions")
    created = api.create(prompt=f"{STAY_QUEUED} cat").json()
    assert created["code"] == 200 and created["message"] == "success"
    queued_id = created["data"]["id"]
    assert created["data"]["status"] == "created" and re.fullmatch(r"[0-9a-f]{32}", queued_id)
    first = api.get(queued_id).json()
    assert first["code"] == 200 and first["data"]["status"] == "created" and first["data"]["outputs"] == []
    assert first["data"]["error"] == "" and first["data"]["has_nsfw_contents"] is None
    assert first["data"]["urls"]["get"].endswith(f"/api/v3/predictions/{queued_id}/result")
    running_id = api.new_task("[[queue:0]] [[run:60]] busy")
    api.wait_status(running_id, "running")
    assert api.get(running_id).json()["data"]["status"] == "processing"
    task_id = api.new_task("[[queue:0]] [[run:0.3]] done")
    api.wait_status(task_id, "succeeded")
    done = api.get(task_id).json()["data"]
    assert done["status"] == "completed" and len(done["outputs"]) == 1 and ".mp4?" in done["outputs"][0]
    assert done["executionTime"] == 300 and done["timings"] == {"inference": 300}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", done["created_at"])


def test_predictions_failed_task(api: Any, emu: Any) -> None:
    emu.configure(dialect="predictions")
    task_id = api.new_task(f"{DONE_NOW} [[fail:policy]]")
    api.wait_status(task_id, "failed")
    data = api.get(task_id).json()["data"]
    assert data["status"] == "failed" and "Content policy" in data["error"] and data["outputs"] == []


def test_envelope_words_for_cancelled_and_expired(api: Any) -> None:
    expired = api.new_task(f"{DONE_NOW} [[expire]]")
    cancelled = api.new_task(f"{STAY_QUEUED} x")
    api.delete(cancelled)
    api.wait_status(expired, "expired")
    data = api.get(expired).json()["data"]
    assert data["status"] == "expired" and "expired" in data["error"] and "completed_at" in data
    data = api.get(cancelled).json()["data"]
    assert data["status"] == "cancelled" and "completed_at" not in data


@pytest.mark.parametrize(
    ("dialect", "location", "expected"),
    [
        ("envelope", "id", lambda i: {"id": i}),
        ("envelope", "task_id", lambda i: {"task_id": i}),
        (
            "envelope",
            "data.id",
            lambda i: {"code": 0, "message": "Success", "data": {"id": i, "status": "pending"}},
        ),
        (
            "ark",
            "data.task_id",
            lambda i: {"code": 0, "message": "Success", "data": {"task_id": i, "status": "pending"}},
        ),
        ("ark", "task_id", lambda i: {"task_id": i}),
        ("predictions", "data.task_id", None),
    ],
)
def test_create_id_field_variants(api: Any, emu: Any, dialect: str, location: str, expected: Any) -> None:
    emu.configure(dialect=dialect, create_id_field=location)
    body = api.create().json()
    task_id = api.emulator.tasks()[-1]["id"]
    if expected is None:
        assert (
            body["code"] == 200 and body["data"]["task_id"] == task_id and body["data"]["status"] == "created"
        )
    else:
        assert body == expected(task_id)


def test_list_uses_task_objects_in_every_dialect(api: Any, emu: Any) -> None:
    task_id = api.new_task()
    for dialect in ("envelope", "ark", "predictions"):
        emu.configure(dialect=dialect)
        listing = api.list().json()
        assert listing["total"] == 1 and listing["items"][0]["id"] == task_id
        assert listing["items"][0]["status"] in ("queued", "running", "succeeded")


def test_dialect_switch_keeps_tasks(api: Any, emu: Any) -> None:
    task_id = api.new_task()
    emu.configure(dialect="ark")
    assert api.get(task_id).json()["id"] == task_id
    emu.configure(dialect="predictions")
    assert api.get(task_id).json()["data"]["id"] == task_id


def test_runtime_config_is_validated_and_reset_restores_it(emu: Any) -> None:
    from airflow_provider_gptproto.emulator.harness import EmulatorError

    for bad in (
        {"dialect": "soap"},
        {"queue_seconds": -1},
        {"stringly_numbers": "yes"},
        {"api_key": "x"},
        {"create_id_field": "data.uuid"},
        {"render_fps": 0},
    ):
        with pytest.raises(EmulatorError, match="400"):
            emu.configure(**bad)
    assert emu.configure(dialect="ark", queue_seconds=1)["queue_seconds"] == 1.0
    emu.reset()
    config = emu.config()
    assert config["dialect"] == "envelope" and config["queue_seconds"] == 0.2 and "api_key" not in config


def test_cli_dialect_and_variants(gptproto_emulator_factory: Any, make_api: Any) -> None:
    emulator = gptproto_emulator_factory(
        dialect="ark", stringly_numbers=True, create_id_field="data.id", fps_field="framepersecond"
    )
    api = make_api(emulator)
    created = api.create(UPSTREAM).json()
    assert created["code"] == 0 and created["data"]["id"].startswith("cgt-")
    body = api.get(created["data"]["id"]).json()
    assert isinstance(body["seed"], str) and "framepersecond" in body
