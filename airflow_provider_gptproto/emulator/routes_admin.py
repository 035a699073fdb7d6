"""Loopback test tooling under ``/_emulator``: media links, faults, stats, log, config, reset.

None of it needs the API key: it is there for tests on the same machine, and the media
links are pre-signed like the real object-store links.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from .config import apply_runtime_changes
from .errors import new_request_id
from .faults import FaultRuleError, parse_rule
from .media import MediaResponse, VirtualFile, hostile_video, xml_error
from .routes_api import emulator
from .signing import MEDIA_PREFIX, check_signature
from .store import Task

router = APIRouter(prefix="/_emulator")


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_parameters"}},
        status_code=400,
    )


async def _json(request: Request) -> Any:
    raw = await request.body()
    return json.loads(raw) if raw.strip() else None


@router.api_route(MEDIA_PREFIX.removeprefix("/_emulator") + "/{name}", methods=["GET", "HEAD"])
async def media(request: Request, name: str) -> Response:
    """A task's video (``{id}.mp4``) or last frame (``{id}.png``) behind a signed, expiring link."""
    state = emulator(request)
    task_id, _, kind = name.rpartition(".")
    request_id = new_request_id()
    if kind not in ("mp4", "png") or not task_id:
        return xml_error(404, "NoSuchKey", "The specified key does not exist.", request_id)
    problem = check_signature(
        state.store.signing_secret,
        task_id,
        kind,
        request.query_params.get("expires"),
        request.query_params.get("sig"),
    )
    if problem == "expired":
        return xml_error(403, "AccessDenied", "Request has expired", request_id)
    if problem:
        return xml_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
            request_id,
        )
    task = state.store.tasks.get(task_id)
    if task is None or task.status() != "succeeded":
        return xml_error(404, "NoSuchKey", "The specified key does not exist.", request_id)
    if kind == "mp4" and task.video:
        return hostile_video(request, task.video)
    rendered = await state.videos.get(state.render_job(task))
    if kind == "png":
        vfile = VirtualFile.padded(rendered.png, 0)
        return MediaResponse(vfile, "image/png", request.headers.get("range"), rendered.png.stem + "-png")
    vfile = VirtualFile.padded(rendered.mp4, state.config.video_bytes)
    etag = f"{rendered.mp4.stem}-{vfile.size}"
    return MediaResponse(vfile, "video/mp4", request.headers.get("range"), etag)


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    state = emulator(request)
    return {"status": "ok", "dialect": state.config.dialect, "tasks": len(state.store.tasks)}


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    state = emulator(request)
    now = time.time()
    by_status: dict[str, int] = {}
    for task in state.store.tasks.values():
        status = task.status(now)
        by_status[status] = by_status.get(status, 0) + 1
    snapshot = state.stats.snapshot()
    callbacks = state.callbacks
    snapshot.update(
        tasks_created=state.store.created_count,
        tasks=by_status,
        renders=state.videos.renders,
        callbacks_sent=callbacks.sent if callbacks else 0,
        callbacks_failed=callbacks.failed if callbacks else 0,
    )
    return snapshot


@router.get("/callbacks")
async def callback_deliveries(request: Request) -> dict[str, Any]:
    """Every webhook delivery attempt (task, status, attempt, HTTP status or error)."""
    callbacks = emulator(request).callbacks
    return {"deliveries": list(callbacks.deliveries) if callbacks else []}


@router.post("/reset")
async def reset(request: Request) -> dict[str, Any]:
    emulator(request).reset()
    return {"reset": True}


@router.get("/faults")
async def list_faults(request: Request) -> dict[str, Any]:
    return {"rules": emulator(request).faults.listing()}


@router.post("/faults", response_model=None)
async def add_faults(request: Request) -> dict[str, Any] | JSONResponse:
    """Add one rule (a JSON object) or several (a JSON array); nothing is added if any is invalid."""
    state = emulator(request)
    try:
        payload = await _json(request)
    except ValueError:
        return _bad_request("the body is not valid JSON")
    raws = payload if isinstance(payload, list) else [payload]
    try:  # validate all first, so a bad batch adds nothing
        for raw in raws:
            parse_rule(raw)
    except FaultRuleError as exc:
        return _bad_request(f"invalid fault rule: {exc}")
    added = [state.faults.add(raw).model_dump() for raw in raws]
    return {"rules": added} if isinstance(payload, list) else added[0]


@router.delete("/faults")
async def clear_faults(request: Request) -> dict[str, Any]:
    return {"cleared": emulator(request).faults.clear()}


@router.delete("/faults/{rule_id}", response_model=None)
async def remove_fault(request: Request, rule_id: str) -> dict[str, Any] | JSONResponse:
    if emulator(request).faults.remove(rule_id):
        return {"removed": rule_id}
    return JSONResponse(
        {
            "error": {
                "message": f"no fault rule {rule_id}",
                "type": "invalid_request_error",
                "code": "not_found",
            }
        },
        status_code=404,
    )


@router.get("/requests")
async def requests_log(request: Request) -> dict[str, Any]:
    params = request.query_params
    limit = int(params["limit"]) if params.get("limit", "").isdigit() else None
    return {"requests": emulator(request).log.entries(params.get("endpoint") or None, limit)}


def _task_view(task: Task, now: float) -> dict[str, Any]:
    return {
        "id": task.id,
        "status": task.status(now),
        "model": task.spec.model,
        "prompt": task.spec.prompt,
        "seed": task.seed,
        "outcome": task.outcome,
        "created_at": task.created_at,
        "queue_seconds": task.queue_seconds,
        "run_seconds": task.run_seconds,
        "request": task.request,
    }


@router.get("/tasks")
async def tasks(request: Request) -> dict[str, Any]:
    now = time.time()
    return {"tasks": [_task_view(task, now) for task in emulator(request).store.tasks.values()]}


@router.post("/advance", response_model=None)
async def advance(request: Request) -> dict[str, Any] | JSONResponse:
    """The clock tests control: move tasks to their next phase now, or (``"to": "end"``) to their outcome.

    Body (optional): ``{"task_ids": [...], "to": "next" | "end"}``; no ids means every unfinished task.
    """
    try:
        payload = await _json(request) or {}
    except ValueError:
        return _bad_request("the body is not valid JSON")
    if not isinstance(payload, dict) or set(payload) - {"task_ids", "to"}:
        return _bad_request("the body must be a JSON object with task_ids and/or to")
    to = payload.get("to", "next")
    if to not in ("next", "end"):
        return _bad_request("to: must be one of next, end")
    task_ids = payload.get("task_ids")
    if task_ids is not None and (
        not isinstance(task_ids, list) or not all(isinstance(i, str) for i in task_ids)
    ):
        return _bad_request("task_ids: must be a list of task id strings")
    return {"advanced": emulator(request).store.advance(task_ids, to_end=to == "end")}


@router.get("/config")
async def get_config(request: Request) -> dict[str, Any]:
    return emulator(request).config.runtime_view()


@router.post("/config", response_model=None)
async def set_config(request: Request) -> dict[str, Any] | JSONResponse:
    """Change dialect, timings or response variants of the running server (new tasks only for timings)."""
    state = emulator(request)
    try:
        payload = await _json(request)
    except ValueError:
        return _bad_request("the body is not valid JSON")
    if not isinstance(payload, dict):
        return _bad_request("the body must be a JSON object of settings")
    problems = apply_runtime_changes(state.config, payload)
    if problems:
        return _bad_request("; ".join(problems))
    return state.config.runtime_view()
