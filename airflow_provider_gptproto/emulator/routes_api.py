"""The emulated API: create, get, list and cancel/delete generation tasks.

Handlers take the raw ``Request`` instead of pydantic body models because the error
bodies must be the service's documented shapes, not FastAPI's 422 format. Authorization
is a router-level dependency, so no handler can forget it; handlers get the state by
dependency too (FastAPI resolves it once per request).
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from . import TASKS_PATH
from .dialects import RenderContext, create_response, get_response, list_response, predictions_object
from .errors import ApiError
from .frames import stored_first_frame
from .prompt import parse_markers
from .state import EmulatorState
from .store import Task, make_task, new_task_id
from .validation import check_task_id, validate_create, validate_list

_ARK_AUTH = "The API key or AK/SK in the request is missing or invalid."


def emulator(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


async def emulator_state(request: Request) -> EmulatorState:
    """``emulator`` as an async dependency (a plain ``def`` one would cost a threadpool hop)."""
    return emulator(request)


StateDep = Annotated[EmulatorState, Depends(emulator_state)]


def base_url(request: Request, state: EmulatorState) -> str:
    """Links point back at the host the client used, unless --public-url says otherwise."""
    return (state.config.public_url or str(request.base_url)).rstrip("/")


def context(request: Request, state: EmulatorState) -> RenderContext:
    return RenderContext(state.config, base_url(request, state), state.store.signing_secret, time.time())


async def authorize(request: Request, state: StateDep) -> None:
    """Accept ``Bearer KEY`` and bare ``KEY``; with no configured key, any non-empty key."""
    header = request.headers.get("authorization", "").strip()
    scheme, _, rest = header.partition(" ")
    presented = rest.strip() if scheme.lower() == "bearer" else header
    if not presented:
        raise ApiError(
            "auth",
            "Missing authentication credentials: send Authorization: Bearer <key>",
            ark_message=_ARK_AUTH,
        )
    expected = state.config.api_key
    if expected and not hmac.compare_digest(presented.encode(), expected.encode()):
        raise ApiError("auth", "Invalid authentication credentials", ark_message=_ARK_AUTH)


def reply(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def prefetch_video(state: EmulatorState, task: Task) -> None:
    """Start rendering once a client polls a task that will succeed, so the download is ready."""
    if task.outcome == "succeeded" and task.status() in ("running", "succeeded"):
        state.videos.submit(state.render_job(task))


async def list_endpoint_served(state: StateDep) -> None:
    """With --no-list-endpoint, the list route answers exactly like an unknown route.

    It raises what Starlette's router raises for a path it does not know, so status, body,
    headers and dialect are the same; and it runs before ``authorize``, which an unknown route
    never reaches.
    """
    if state.config.no_list_endpoint:
        raise HTTPException(status_code=404)


tasks_router = APIRouter(dependencies=[Depends(authorize)])
# List has its own router only so that its on/off switch runs before authorization.
list_router = APIRouter(dependencies=[Depends(list_endpoint_served), Depends(authorize)])


@tasks_router.post(TASKS_PATH)
async def create_task(request: Request, state: StateDep) -> JSONResponse:
    raw = await request.body()
    try:
        payload = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        raise ApiError(
            "invalid_json", "Invalid request parameters: the body is not valid JSON", "body"
        ) from exc
    if payload is None:
        raise ApiError("invalid_json", "Invalid request parameters: the body must be a JSON object", "body")
    spec = validate_create(payload)
    markers = parse_markers(spec.prompt)
    if markers.reject_status:
        raise ApiError(
            "policy",
            "Content policy violation: the input text may contain sensitive information (scripted)",
            "content" if spec.body_format == "content" else "prompt",
            status=markers.reject_status,
        )
    config = state.config
    if config.max_queued and state.store.queued_count() >= config.max_queued:
        raise ApiError("rate_limit", f"Rate limit exceeded: at most {config.max_queued} queued tasks")
    task = make_task(
        new_task_id(config.dialect, state.store.tasks),
        spec,
        markers.queue_seconds if markers.queue_seconds is not None else config.queue_seconds,
        markers.run_seconds if markers.run_seconds is not None else config.run_seconds,
        markers.outcome,
        (markers.failure_code, markers.failure_message),
        base_url(request, state),
        links_expired=markers.links_expired,
        first_frame=await stored_first_frame(state, payload),
        video=markers.video,
    )
    state.store.add(task)
    request.scope.setdefault("gptproto", {})["task_id"] = task.id
    return reply(create_response(task, context(request, state)))


@list_router.get(TASKS_PATH)
async def list_tasks(request: Request, state: StateDep) -> JSONResponse:
    query = validate_list(request.query_params)
    tasks, total = state.store.query(query)
    return reply(list_response(tasks, total, context(request, state)))


@tasks_router.get(TASKS_PATH + "/{task_id}")
async def get_task(request: Request, task_id: str, state: StateDep) -> JSONResponse:
    check_task_id(task_id)
    task = state.store.get(task_id)
    prefetch_video(state, task)
    return reply(get_response(task, context(request, state)))


@tasks_router.get("/api/v3/predictions/{task_id}/result")
async def get_prediction(request: Request, task_id: str, state: StateDep) -> JSONResponse:
    """GPTProto's own result route; always answers in the predictions format."""
    check_task_id(task_id)
    task = state.store.get(task_id)
    prefetch_video(state, task)
    return reply(predictions_object(task, context(request, state)))


@tasks_router.delete(TASKS_PATH + "/{task_id}")
async def delete_task(task_id: str, state: StateDep) -> JSONResponse:
    check_task_id(task_id)
    state.store.cancel_or_delete(task_id)
    return reply({})


# What the app mounts (include_router copies routes, so this comes after them all).
router = APIRouter()
router.include_router(tasks_router)
router.include_router(list_router)
