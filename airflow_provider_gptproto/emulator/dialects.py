"""Response bodies in the three formats the real service has been seen to use.

- ``envelope``: GPTProto's ``{"code": 0, "message": "Success", "data": {...}}`` (shape A),
- ``ark``: the upstream task object (shape B), which the official Ark SDK parses,
- ``predictions``: GPTProto's ``{"code": 200, "data": {"outputs": [...]}}`` (shape C).

The list endpoint is documented only with B items, so it uses B in every dialect.
Shape A documents four status words; for the two states it has no word for, the
emulator uses the upstream words ``cancelled`` and ``expired``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .config import EmulatorConfig
from .prompt import POLICY_FAILURE
from .signing import signed_url
from .store import Task

_ENVELOPE_WORDS = {"queued": "pending", "running": "processing", "succeeded": "completed"}
_PREDICTION_WORDS = {"queued": "created", "running": "processing", "succeeded": "completed"}
_NATIVE_CREATE_ID = {"envelope": "data.task_id", "ark": "id", "predictions": "data.id"}
STRINGLY_FIELDS = ("seed", "created_at", "updated_at")


@dataclass
class RenderContext:
    """What a response needs besides the task: settings, the public base URL and the link secret."""

    config: EmulatorConfig
    base_url: str
    secret: str
    now: float

    def media_url(self, task: Task, kind: str) -> str:
        # An already-expired link names a second before the task finished, so it is past at issue.
        ttl = -1.0 if task.links_expired else self.config.url_ttl_seconds
        expires_at = task.finished_at + ttl
        return signed_url(self.base_url, self.secret, task.id, "png" if kind == "png" else "mp4", expires_at)


def iso(timestamp: float, fraction: bool = False) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    text = moment.isoformat(timespec="microseconds" if fraction else "seconds")
    return text.replace("+00:00", "Z")


def _error_text(task: Task, status: str) -> str | None:
    if status == "failed":
        prefix = "Content policy violation: " if task.failure_code == POLICY_FAILURE[0] else ""
        return f"{prefix}{task.failure_message} ({task.failure_code})"
    if status == "expired":
        return "Task expired: generation did not finish within execution_expires_after"
    if status == "cancelled":
        return "Task was cancelled"
    return None


def tokens(task: Task) -> int:
    """Upstream bills roughly width x height x fps x seconds / 1024 tokens."""
    spec = task.spec
    return int(spec.width * spec.height * spec.framespersecond * spec.seconds / 1024)


def task_object(task: Task, ctx: RenderContext, status: str | None = None) -> dict[str, Any]:
    """Shape B, the upstream task object (``status`` forces the status, for webhook bodies)."""
    spec = task.spec
    status = status or task.status(ctx.now)
    obj: dict[str, Any] = {"id": task.id, "model": spec.model, "status": status}
    if status == "succeeded":
        content = {"video_url": ctx.media_url(task, "mp4")}
        if spec.return_last_frame:
            content["last_frame_url"] = ctx.media_url(task, "png")
        obj["content"] = content
        used = tokens(task)
        obj["usage"] = {"completion_tokens": used, "total_tokens": used}
    obj["error"] = (
        {"code": task.failure_code, "message": task.failure_message} if status == "failed" else None
    )
    obj["seed"] = task.seed
    obj["resolution"] = spec.resolution
    obj["ratio"] = spec.ratio
    if spec.frames:
        obj["frames"] = spec.frames
    else:
        obj["duration"] = spec.duration
    obj[ctx.config.fps_field] = spec.framespersecond
    obj["created_at"] = int(task.created_at)
    obj["updated_at"] = int(task.updated_at(ctx.now))
    obj["service_tier"] = spec.service_tier
    obj["execution_expires_after"] = spec.execution_expires_after
    obj["draft"] = spec.draft
    if spec.generate_audio is not None:
        obj["generate_audio"] = spec.generate_audio
    if ctx.config.stringly_numbers:
        for name in STRINGLY_FIELDS:
            obj[name] = str(obj[name])
    return obj


def envelope_object(task: Task, ctx: RenderContext) -> dict[str, Any]:
    """Shape A, GPTProto's envelope (HTTP 200 and code 0 even when the task failed)."""
    status = task.status(ctx.now)
    data: dict[str, Any] = {
        "task_id": task.id,
        "status": _ENVELOPE_WORDS.get(status, status),
        "model": task.spec.model,
        "created_at": iso(task.created_at),
    }
    if status == "succeeded":
        data["video_url"] = ctx.media_url(task, "mp4")
    if status in ("succeeded", "failed", "expired"):
        data["completed_at"] = iso(task.finished_at)
    error = _error_text(task, status)
    if error:
        data["error"] = error
    return {"code": 0, "message": "Success", "data": data}


def predictions_object(task: Task, ctx: RenderContext) -> dict[str, Any]:
    """Shape C, GPTProto's predictions envelope (code 200, ``outputs`` list)."""
    status = task.status(ctx.now)
    finished = status in ("succeeded", "failed", "expired")
    elapsed_ms = int(task.run_seconds * 1000) if finished else 0
    data: dict[str, Any] = {
        "id": task.id,
        "model": task.spec.model,
        "outputs": [ctx.media_url(task, "mp4")] if status == "succeeded" else [],
        "urls": task_urls(task, ctx),
        "status": _PREDICTION_WORDS.get(status, status),
        "error": _error_text(task, status) or "",
        "executionTime": elapsed_ms,
        "timings": {"inference": elapsed_ms},
        "has_nsfw_contents": None,
        "created_at": iso(task.created_at, fraction=True),
    }
    return {"data": data, "message": "success", "code": 200}


def get_response(task: Task, ctx: RenderContext, dialect: str | None = None) -> dict[str, Any]:
    dialect = dialect or ctx.config.dialect
    if dialect == "ark":
        return task_object(task, ctx)
    if dialect == "predictions":
        return predictions_object(task, ctx)
    return envelope_object(task, ctx)


def create_response(task: Task, ctx: RenderContext) -> dict[str, Any]:
    """The create reply; ``--create-id-field`` moves the id to any location seen in the wild."""
    dialect = ctx.config.dialect
    location: str = ctx.config.create_id_field
    if location == "auto":
        location = _NATIVE_CREATE_ID[dialect]
    if location in ("id", "task_id"):
        return {location: task.id}
    key = location.split(".", 1)[1]
    if dialect == "predictions":
        data = {key: task.id, "status": "created", "urls": task_urls(task, ctx)}
        return {"code": 200, "message": "success", "data": data}
    return {"code": 0, "message": "Success", "data": {key: task.id, "status": "pending"}}


def task_urls(task: Task, ctx: RenderContext) -> dict[str, str]:
    return {"get": f"{ctx.base_url.rstrip('/')}/api/v3/predictions/{task.id}/result"}


def list_response(tasks: list[Task], total: int, ctx: RenderContext) -> dict[str, Any]:
    return {"items": [task_object(task, ctx) for task in tasks], "total": total}
