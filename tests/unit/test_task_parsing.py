"""Every create / get / list reply variant of docs/api-contract.md parses into one GenerationTask."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_gptproto.exceptions import GPTProtoResponseError
from airflow_provider_gptproto.models import (
    GenerationTask,
    TaskStatus,
    parse_create,
    parse_task,
    parse_task_list,
)

VIDEO = "https://cdn.example.com/v/abc.mp4?X-Tos-Signature=1"

# ------------------------------------------------------------------------------------ create


@pytest.mark.parametrize(
    ("body", "task_id", "status"),
    [
        (
            {"code": 0, "message": "Success", "data": {"task_id": "task_x", "status": "pending"}},
            "task_x",
            "pending",
        ),
        ({"id": "cgt-20251225201056-abc"}, "cgt-20251225201056-abc", "pending"),
        ({"code": 0, "message": "Success", "data": {"id": "d-1"}}, "d-1", "pending"),
        ({"data": {"id": "d-2"}}, "d-2", "pending"),
        ({"task_id": "t-1"}, "t-1", "pending"),
        ({"task_id": "t-2", "status": "queued"}, "t-2", "pending"),
        ({"id": "t-3", "status": "running"}, "t-3", "running"),
        ({"id": 12345}, "12345", "pending"),
        ({"code": "0", "message": "ok", "data": {"task_id": "t-4"}}, "t-4", "pending"),
        ({"code": 200, "message": "success", "data": {"id": "t-5", "status": "created"}}, "t-5", "pending"),
    ],
)
def test_create_reply_id_locations(body: dict[str, Any], task_id: str, status: str) -> None:
    task = parse_create(body)
    assert task.task_id == task_id
    assert task.status.value == status
    assert not task.is_terminal


def test_create_reply_status_success_means_accepted() -> None:
    assert parse_create({"id": "t", "status": "success"}).status is TaskStatus.SUCCEEDED
    assert parse_create({"id": "t", "status": "accepted"}).status is TaskStatus.PENDING


@pytest.mark.parametrize(
    "body",
    [
        {"status": "success"},
        {"code": 0, "message": "Success", "data": {"status": "pending"}},
        {"code": 0, "message": "Success", "data": None},
        {"id": ""},
        {"id": "   "},
        {"id": None, "task_id": None},
        {"id": True},
        {"id": {"nested": "x"}},
        {"id": ["x"]},
        {},
    ],
)
def test_create_reply_without_usable_id_is_a_clear_response_error(body: dict[str, Any]) -> None:
    with pytest.raises(GPTProtoResponseError) as info:
        parse_create(body)
    message = str(info.value)
    assert "no task id" in message
    for place in ("id", "task_id", "data.task_id", "data.id"):
        assert place in message
    assert "may have been created" in message


@pytest.mark.parametrize("body", [None, [], "task_x", 5, [{"id": "x"}]])
def test_create_reply_not_an_object(body: Any) -> None:
    with pytest.raises(GPTProtoResponseError, match="not a JSON object"):
        parse_create(body)


def test_envelope_with_error_code_is_a_response_error() -> None:
    with pytest.raises(GPTProtoResponseError, match="code 1001: quota exhausted"):
        parse_create({"code": 1001, "message": "quota exhausted", "data": {"task_id": "t"}})


# ------------------------------------------------------------------------------------ get: A, B, C


def test_shape_a_vendor_envelope_completed() -> None:
    task = parse_task(
        {
            "code": 0,
            "message": "Success",
            "data": {
                "task_id": "task_a",
                "status": "completed",
                "model": "seedance-1-0-lite-i2v-250428",
                "video_url": VIDEO,
                "created_at": "2025-12-25T20:10:56Z",
                "completed_at": "2025-12-25T20:12:00+00:00",
            },
        }
    )
    assert task.task_id == "task_a"
    assert task.status is TaskStatus.SUCCEEDED
    assert task.is_terminal
    assert task.video_url == VIDEO
    assert task.model == "seedance-1-0-lite-i2v-250428"
    assert task.created_at == datetime(2025, 12, 25, 20, 10, 56, tzinfo=timezone.utc)
    assert task.updated_at == datetime(2025, 12, 25, 20, 12, 0, tzinfo=timezone.utc)
    assert task.error_code is None
    assert task.error_message is None


def test_shape_a_failed_with_http_200_carries_error_string() -> None:
    task = parse_task(
        {
            "code": 0,
            "message": "Success",
            "data": {"task_id": "t", "status": "failed", "error": "GPU exploded"},
        }
    )
    assert task.status is TaskStatus.FAILED
    assert task.error_message == "GPU exploded"
    assert task.error_code is None
    assert task.video_url is None


def test_shape_b_upstream_with_numbers_as_strings_and_fps_typo() -> None:
    body = {
        "id": "cgt-20251225201056-abc",
        "model": "doubao-seedance-1-0-pro-250528",
        "status": "succeeded",
        "content": {"video_url": VIDEO, "last_frame_url": "https://cdn.example.com/v/abc.png"},
        "usage": {"completion_tokens": "108900", "total_tokens": 108900},
        "error": None,
        "seed": "16108",
        "resolution": "720p",
        "ratio": "16:9",
        "duration": "5",
        "framepersecond": "24",
        "created_at": "1766663633",
        "updated_at": 1766663700,
    }
    task = parse_task(body)
    assert task.task_id == "cgt-20251225201056-abc"
    assert task.status is TaskStatus.SUCCEEDED
    assert task.video_url == VIDEO
    assert task.last_frame_url == "https://cdn.example.com/v/abc.png"
    assert task.seed == 16108
    assert task.usage == {"completion_tokens": 108900, "total_tokens": 108900}
    assert task.created_at == datetime.fromtimestamp(1766663633, tz=timezone.utc)
    assert task.updated_at == datetime.fromtimestamp(1766663700, tz=timezone.utc)
    assert task.error_code is None and task.error_message is None
    assert task.raw["framepersecond"] == "24"


def test_shape_b_correctly_spelt_fps_and_frames() -> None:
    task = parse_task({"id": "x", "status": "running", "frames": 121, "framespersecond": 24})
    assert task.status is TaskStatus.RUNNING
    assert task.raw["framespersecond"] == 24


def test_shape_b_failed_with_error_object() -> None:
    task = parse_task(
        {
            "id": "x",
            "status": "failed",
            "error": {
                "code": "OutputVideoSensitiveContentDetected",
                "message": "The output video may contain",
            },
        }
    )
    assert task.status is TaskStatus.FAILED
    assert task.error_code == "OutputVideoSensitiveContentDetected"
    assert task.error_message == "The output video may contain"
    assert task.is_content_policy_violation


def test_shape_b_failed_for_another_reason_is_not_content_policy() -> None:
    task = parse_task(
        {"id": "x", "status": "failed", "error": {"code": "InternalServiceError", "message": "oops"}}
    )
    assert not task.is_content_policy_violation


@pytest.mark.parametrize("status", ["cancelled", "expired"])
def test_shape_b_other_terminal_states(status: str) -> None:
    task = parse_task({"id": "x", "status": status, "error": None})
    assert task.status.value == status
    assert task.is_terminal


@pytest.mark.parametrize("error", ["", None])
def test_shape_c_predictions_envelope(error: Any) -> None:
    task = parse_task(
        {
            "code": 200,
            "message": "success",
            "data": {
                "id": "pred-1",
                "status": "completed",
                "outputs": [VIDEO, "https://cdn.example.com/second.mp4"],
                "error": error,
                "created_at": "2026-01-01 00:00:00",
            },
        }
    )
    assert task.task_id == "pred-1"
    assert task.status is TaskStatus.SUCCEEDED
    assert task.video_url == VIDEO
    assert task.error_message is None
    assert task.error_code is None
    assert task.created_at == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_shape_c_created_with_empty_outputs() -> None:
    task = parse_task(
        {
            "code": 200,
            "message": "success",
            "data": {"id": "p", "status": "created", "outputs": [], "error": ""},
        }
    )
    assert task.status is TaskStatus.PENDING
    assert task.video_url is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01 00:00:00", datetime(2026, 1, 1, tzinfo=timezone.utc)),
        ("2026-01-01T08:00:00+08:00", datetime(2026, 1, 1, tzinfo=timezone.utc)),
        ("2025-12-25T20:10:56Z", datetime(2025, 12, 25, 20, 10, 56, tzinfo=timezone.utc)),
        ("2025-12-25T20:10:56.123456Z", datetime(2025, 12, 25, 20, 10, 56, 123456, tzinfo=timezone.utc)),
        (1766663633, datetime.fromtimestamp(1766663633, tz=timezone.utc)),
        ("1766663633", datetime.fromtimestamp(1766663633, tz=timezone.utc)),
        (1766663633.0, datetime.fromtimestamp(1766663633, tz=timezone.utc)),
        ("", None),
        (None, None),
        ("yesterday", None),
        ("1e30", None),
        (True, None),
        ({"t": 1}, None),
    ],
)
def test_timestamps(value: Any, expected: datetime | None) -> None:
    assert parse_task({"id": "x", "status": "queued", "created_at": value}).created_at == expected


@pytest.mark.parametrize(
    ("seed", "expected"), [("16108", 16108), (16108, 16108), ("16108.0", 16108), ("abc", None), (None, None)]
)
def test_seed_numbers_as_strings(seed: Any, expected: int | None) -> None:
    assert parse_task({"id": "x", "status": "queued", "seed": seed}).seed == expected


# ------------------------------------------------------------------------------------ status words

STATUS_WORDS = {
    "pending": TaskStatus.PENDING,
    "queued": TaskStatus.PENDING,
    "created": TaskStatus.PENDING,
    "submitted": TaskStatus.PENDING,
    "processing": TaskStatus.RUNNING,
    "running": TaskStatus.RUNNING,
    "in_progress": TaskStatus.RUNNING,
    "completed": TaskStatus.SUCCEEDED,
    "succeeded": TaskStatus.SUCCEEDED,
    "success": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
    "failure": TaskStatus.FAILED,
    "cancelled": TaskStatus.CANCELLED,
    "canceled": TaskStatus.CANCELLED,
    "expired": TaskStatus.EXPIRED,
    "timeout": TaskStatus.EXPIRED,
}


@pytest.mark.parametrize("word", sorted(STATUS_WORDS))
@pytest.mark.parametrize("spelling", [str.lower, str.upper, str.title, lambda w: f"  {w.capitalize()} "])
def test_every_status_word_case_insensitively(word: str, spelling: Any) -> None:
    expected = STATUS_WORDS[word]
    assert TaskStatus.parse(spelling(word)) is expected
    for body in (
        {"id": "x", "status": spelling(word)},
        {"code": 0, "message": "Success", "data": {"task_id": "x", "status": spelling(word)}},
        {"code": 200, "message": "success", "data": {"id": "x", "status": spelling(word)}},
    ):
        assert parse_task(body).status is expected


@pytest.mark.parametrize("status", list(TaskStatus))
def test_parse_accepts_members_and_values(status: TaskStatus) -> None:
    assert TaskStatus.parse(status) is status
    assert TaskStatus.parse(status.value) is status


def test_terminal_states() -> None:
    assert {s for s in TaskStatus if s.is_terminal} == {
        TaskStatus.SUCCEEDED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
        TaskStatus.EXPIRED,
    }


@pytest.mark.parametrize("status", ["done", "paused", "", 5, None, ["running"], {"s": "running"}])
def test_unknown_status_is_a_response_error(status: Any) -> None:
    with pytest.raises(GPTProtoResponseError) as info:
        parse_task({"id": "x", "status": status})
    assert "Unknown GPTProto task status" in str(info.value)
    assert "succeeded" in str(info.value)  # names what would have been understood


def test_missing_status_is_a_response_error() -> None:
    with pytest.raises(GPTProtoResponseError, match="status"):
        parse_task({"id": "x", "content": {"video_url": VIDEO}})


@pytest.mark.parametrize(
    "body",
    [
        {"status": "running"},
        {"code": 0, "message": "Success", "data": {"status": "running"}},
        {"id": "", "status": "running"},
        {"id": {"a": 1}, "status": "running"},
        {"id": False, "status": "running"},
    ],
)
def test_missing_id_is_a_response_error(body: dict[str, Any]) -> None:
    with pytest.raises(GPTProtoResponseError, match="no task id"):
        parse_task(body)


# ------------------------------------------------------------------------------------ video URL


@pytest.mark.parametrize(
    "body",
    [
        {
            "code": 0,
            "message": "Success",
            "data": {"task_id": "x", "status": "completed", "video_url": VIDEO},
        },
        {"id": "x", "status": "succeeded", "content": {"video_url": VIDEO}},
        {"code": 200, "message": "success", "data": {"id": "x", "status": "completed", "outputs": [VIDEO]}},
        {"id": "x", "status": "succeeded", "output": {"video_url": VIDEO}},
        {"id": "x", "status": "succeeded", "result_url": VIDEO},
        {"id": "x", "status": "succeeded", "url": VIDEO},
    ],
    ids=["data.video_url", "content.video_url", "data.outputs[0]", "output.video_url", "result_url", "url"],
)
def test_every_video_url_location(body: dict[str, Any]) -> None:
    assert parse_task(body).video_url == VIDEO


@pytest.mark.parametrize(
    "extra",
    [
        {"outputs": []},
        {"outputs": "x.mp4"},
        {"outputs": [{"url": VIDEO}]},
        {"video_url": ""},
        {"content": None},
    ],
)
def test_no_video_url_is_none_not_an_error(extra: dict[str, Any]) -> None:
    assert parse_task({"id": "x", "status": "running", **extra}).video_url is None


# ------------------------------------------------------------------------------------ list


def test_list_reply() -> None:
    page = parse_task_list(
        {
            "items": [
                {"id": "a", "status": "queued", "created_at": 1766663633},
                {"id": "b", "status": "succeeded", "content": {"video_url": VIDEO}},
            ],
            "total": 42,
        }
    )
    assert [t.task_id for t in page.items] == ["a", "b"]
    assert [t.status for t in page.items] == [TaskStatus.PENDING, TaskStatus.SUCCEEDED]
    assert page.items[1].video_url == VIDEO
    assert page.total == 42


def test_list_reply_in_envelope_with_string_total() -> None:
    page = parse_task_list({"code": 0, "message": "Success", "data": {"items": [], "total": "0"}})
    assert page.items == []
    assert page.total == 0


def test_list_reply_without_total_counts_items() -> None:
    assert parse_task_list({"items": [{"id": "a", "status": "queued"}]}).total == 1


@pytest.mark.parametrize("body", [{"total": 0}, {"items": None}, {"items": {"a": 1}}, [], None])
def test_list_reply_without_items_list(body: Any) -> None:
    with pytest.raises(GPTProtoResponseError):
        parse_task_list(body)


def test_list_reply_with_a_bad_item() -> None:
    with pytest.raises(GPTProtoResponseError):
        parse_task_list({"items": [{"id": "a", "status": "queued"}, {"id": "b", "status": "??"}]})


# ------------------------------------------------------------------------------------ round trip


def test_to_dict_is_json_safe_and_from_dict_round_trips() -> None:
    task = parse_task(
        {
            "id": "x",
            "status": "failed",
            "error": {"code": "InputTextSensitiveContentDetected", "message": "no"},
            "seed": 3,
            "usage": {"total_tokens": 10},
            "created_at": 1766663633,
            "model": "m",
        }
    )
    data = json.loads(json.dumps(task.to_dict()))
    assert "raw" not in data
    again = GenerationTask.from_dict(data)
    assert again.to_dict() == task.to_dict()
    assert again.status is TaskStatus.FAILED
    assert again.is_content_policy_violation


# ------------------------------------------------------------------------------------ fuzzing

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
_words = st.sampled_from([*STATUS_WORDS, "SUCCEEDED", "weird", "", "data", "id", "status"])
_json = st.recursive(
    _scalars | _words,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "task_id",
                    "status",
                    "data",
                    "code",
                    "message",
                    "items",
                    "total",
                    "content",
                    "video_url",
                    "outputs",
                    "error",
                    "seed",
                    "usage",
                    "created_at",
                    "updated_at",
                    "completed_at",
                    "url",
                    "output",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None, database=None)
@given(_json)
def test_parsers_raise_only_response_errors(body: Any) -> None:
    for parser in (parse_task, parse_create, parse_task_list):
        try:
            result = parser(body)
        except GPTProtoResponseError:
            continue
        if isinstance(result, GenerationTask):
            assert result.task_id
            json.dumps(result.to_dict())
