"""Normalise every task shape the vendor returns (vendor envelope, upstream Ark object,
"predictions" envelope) into one :class:`GenerationTask`; what cannot be read is a
:class:`GPTProtoResponseError` saying what was missing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict

from airflow_provider_gptproto.exceptions import (
    GPTProtoResponseError,
    GPTProtoTaskContentPolicyError,
    GPTProtoTaskExpiredError,
    GPTProtoTaskFailedError,
)
from airflow_provider_gptproto.models.errors import looks_like_content_policy
from airflow_provider_gptproto.models.results import TaskResult


class TaskStatus(str, enum.Enum):
    """The six states every vendor status word maps onto."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self not in (TaskStatus.PENDING, TaskStatus.RUNNING)

    @property
    def phrase(self) -> str:
        """The state as the rest of a sentence, for log lines: "GPTProto task t1 has succeeded"."""
        return _PHRASES[self]

    @classmethod
    def parse(cls, word: Any) -> TaskStatus:
        if isinstance(word, TaskStatus):  # str(member) is "TaskStatus.X" before Python 3.12
            return word
        status = _STATUS_WORDS.get(str(word).strip().lower()) if word is not None else None
        if status is None:
            raise GPTProtoResponseError(
                f"Unknown GPTProto task status {str(word)[:40]!r}; expected one of {sorted(_STATUS_WORDS)}"
            )
        return status


_PHRASES = {
    TaskStatus.PENDING: "is queued",
    TaskStatus.RUNNING: "is running",
    TaskStatus.SUCCEEDED: "has succeeded",
    TaskStatus.FAILED: "has failed",
    TaskStatus.CANCELLED: "was cancelled",
    TaskStatus.EXPIRED: "has expired",
}

_STATUS_WORDS = {
    **dict.fromkeys(("pending", "queued", "created", "submitted"), TaskStatus.PENDING),
    **dict.fromkeys(("processing", "running", "in_progress"), TaskStatus.RUNNING),
    **dict.fromkeys(("completed", "succeeded", "success"), TaskStatus.SUCCEEDED),
    **dict.fromkeys(("failed", "failure"), TaskStatus.FAILED),
    **dict.fromkeys(("cancelled", "canceled"), TaskStatus.CANCELLED),
    **dict.fromkeys(("expired", "timeout"), TaskStatus.EXPIRED),
}


class GenerationTask(BaseModel):
    """One remote generation task, whatever shape the server sent it in."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    status: TaskStatus
    video_url: str | None = None
    last_frame_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    model: str | None = None
    seed: int | None = None
    usage: dict[str, int] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = {}

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def is_content_policy_violation(self) -> bool:
        return looks_like_content_policy(self.error_code, self.error_message)

    def with_seed(self, seed: int | None) -> GenerationTask:
        """This task, carrying the ``seed`` it was created with when the reply reported none.

        A seed the server reports wins; ``-1`` (server's choice) is not a seed and is left out.
        """
        if self.seed is not None or seed is None or seed == -1:
            return self
        return self.model_copy(update={"seed": seed})

    def raise_for_status(self) -> None:
        """Raise for a task that ended without a video; content-policy failures get their own class."""
        if self.status in (TaskStatus.FAILED, TaskStatus.EXPIRED, TaskStatus.CANCELLED):
            error = GPTProtoTaskExpiredError if self.status is TaskStatus.EXPIRED else GPTProtoTaskFailedError
            error = GPTProtoTaskContentPolicyError if self.is_content_policy_violation else error
            raise error(self.task_id, self.status.value, self.error_code, self.error_message)

    def to_dict(self) -> TaskResult:
        """JSON-safe summary for XCom and trigger events (no raw body, which can be large)."""
        return {
            "task_id": self.task_id,
            "status": self.status.value,
            "video_url": self.video_url,
            "last_frame_url": self.last_frame_url,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "model": self.model,
            "seed": self.seed,
            "usage": self.usage,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationTask:
        """Inverse of :meth:`to_dict`, for trigger events crossing the triggerer boundary."""
        return cls.model_validate({k: v for k, v in data.items() if k in cls.model_fields})


def parse_task(body: Any) -> GenerationTask:
    """Parse a get-task reply (or one list item) of any documented shape."""
    obj = _unwrap(body)
    task_id = _task_id(obj, f"GPTProto task reply has no task id (keys: {sorted(obj)[:12]})")
    status = TaskStatus.parse(_first(obj, ("status",), ("state",)))
    code, message = _error(obj.get("error"))
    return GenerationTask(
        task_id=task_id,
        status=status,
        video_url=_str_or_none(_video_url(obj)),
        last_frame_url=_str_or_none(_first(obj, ("content", "last_frame_url"), ("last_frame_url",))),
        error_code=code,
        error_message=message,
        model=_str_or_none(obj.get("model")),
        seed=_int_or_none(obj.get("seed")),
        usage=_usage(obj.get("usage")),
        created_at=parse_when(obj.get("created_at")),
        updated_at=parse_when(_first(obj, ("updated_at",), ("completed_at",))),
        raw=obj,
    )


def parse_create(body: Any) -> GenerationTask:
    """Parse a create reply: only an id is guaranteed (``id``, ``data.task_id``, ``data.id``, ``task_id``)."""
    obj = _unwrap(body)
    task_id = _task_id(
        obj,
        "GPTProto create reply carries no task id (looked in id, task_id, data.task_id, data.id); "
        "a task may have been created",
    )
    status = obj.get("status")
    try:
        parsed = TaskStatus.parse(status) if status is not None else TaskStatus.PENDING
    except GPTProtoResponseError:
        parsed = TaskStatus.PENDING  # e.g. {"status": "success"} meaning "accepted"
    return GenerationTask(task_id=task_id, status=parsed, model=_str_or_none(obj.get("model")), raw=obj)


class TaskList(BaseModel):
    """One page of the list endpoint."""

    model_config = ConfigDict(frozen=True)

    items: list[GenerationTask]
    total: int


def parse_task_list(body: Any) -> TaskList:
    """Parse ``{"items": [...], "total": N}`` (also inside a ``data`` envelope)."""
    obj = _unwrap(body)
    items = obj.get("items")
    if not isinstance(items, list):
        raise GPTProtoResponseError("GPTProto list reply has no 'items' list")
    total = _int_or_none(obj.get("total"))
    return TaskList(
        items=[parse_task(item) for item in items], total=total if total is not None else len(items)
    )


def _unwrap(body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise GPTProtoResponseError(f"GPTProto reply is not a JSON object (got {type(body).__name__})")
    data = body.get("data")
    if isinstance(data, Mapping) and ("code" in body or "message" in body or len(body) == 1):
        code = _int_or_none(body.get("code"))
        if code not in (None, 0, 200):
            raise GPTProtoResponseError(
                f"GPTProto envelope reports code {code}: {str(body.get('message'))[:200]}"
            )
        return dict(data)
    return dict(body)


def _task_id(obj: Mapping[str, Any], missing: str) -> str:
    """The task id as a string; one that is not a string or an integer is missing: ``missing`` is raised."""
    value = _first(obj, ("task_id",), ("id",))
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise GPTProtoResponseError(missing)
    return str(value)


def _first(obj: Mapping[str, Any], *paths: tuple[str, ...]) -> Any:
    for path in paths:
        node: Any = obj
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if node not in (None, ""):
            return node
    return None


def _video_url(obj: Mapping[str, Any]) -> Any:
    found = _first(
        obj, ("video_url",), ("content", "video_url"), ("output", "video_url"), ("result_url",), ("url",)
    )
    if found is None:
        outputs = obj.get("outputs")
        if isinstance(outputs, list) and outputs:
            found = outputs[0]
    return found


def _error(raw: Any) -> tuple[str | None, str | None]:
    if isinstance(raw, Mapping):
        return _str_or_none(raw.get("code")), _str_or_none(raw.get("message"))
    return None, _str_or_none(raw)


def _str_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, (Mapping, list)):
        return None
    text = str(value)
    return text or None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(float(value)) if isinstance(value, (str, float)) else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _usage(raw: Any) -> dict[str, int] | None:
    if not isinstance(raw, Mapping):
        return None
    usage = {str(k): v for k, v in ((k, _int_or_none(v)) for k, v in raw.items()) if v is not None}
    return usage or None


def parse_when(value: Any) -> datetime | None:
    """Unix seconds (int or string), ISO-8601, or ``YYYY-MM-DD HH:MM:SS`` (taken as UTC); None if none."""
    if value in (None, "") or isinstance(value, bool):
        return None
    number = _int_or_none(value) if not (isinstance(value, str) and "-" in value) else None
    try:
        if number is not None:
            return datetime.fromtimestamp(number, tz=timezone.utc)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None
