"""The endpoints behind the Video tab and the gallery, mounted by the api-server under ``/gptproto``.

A plugin's app gets none of Airflow's auth on its own, so every route declares the api-server's
checks: ``requires_access_dag(GET, TASK_INSTANCE)`` for task instances, ``requires_access_asset(GET)``
plus the readable DAGs for the gallery (docs/ui.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any
from urllib.parse import quote

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_asset, requires_access_dag
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse

from airflow_provider_gptproto.plugins import pages
from airflow_provider_gptproto.plugins.gptproto import ui_base_path
from airflow_provider_gptproto.plugins.media import MediaKind, file_response, servable_file
from airflow_provider_gptproto.plugins.records import (
    VideoRecord,
    event_by_id,
    event_record,
    gallery_dag_ids,
    gallery_page,
    review_request,
    task_operator,
    task_records,
)
from airflow_provider_gptproto.plugins.signed_urls import is_expired, signed_url_expiry

READ_TASK_INSTANCE = Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE))
READ_ASSETS = Depends(requires_access_asset(method="GET"))
# What GET .../hitlDetails needs (Airflow 3.1+; app.py is only served there, but imported on 3.0 too).
READ_HITL = Depends(
    requires_access_dag(method="GET", access_entity=getattr(DagAccessEntity, "HITL_DETAIL", None))
)
PAGE_SIZE = 24

router = APIRouter()


def create_app() -> FastAPI:
    app = FastAPI(title="GPTProto videos", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router)
    return app


# ----------------------------------------------------------------------------------- view models
def _map_index(raw: str | None) -> int:
    """The UI leaves ``{MAP_INDEX}`` as is on unmapped tasks: anything but an integer is -1."""
    try:
        return int(raw) if raw is not None else -1
    except ValueError:
        return -1


def _media_base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/") + "/media"


def _ti_base(request: Request, route: str, dag_id: str, run_id: str, task_id: str) -> str:
    ids = "/".join(quote(part, safe="") for part in (dag_id, run_id, task_id))
    return f"{str(request.scope.get('root_path', '')).rstrip('/')}/{route}/{ids}"


def _task_video(request: Request, record: VideoRecord, index: int) -> dict[str, Any]:
    """Which source the player gets: the stored copy, else the signed URL while valid, else nothing."""
    base = f"{_ti_base(request, 'media/ti', record.dag_id, record.run_id, record.task_id)}/{index}"
    query = f"?map_index={record.map_index}"
    stored = f"{base}/video{query}" if _servable(record, "video") else None
    poster = f"{base}/poster{query}" if stored and _servable(record, "poster") else None
    expires = record.video_url_expires
    if stored:
        source, notice = stored, ""
    elif record.video_url and not is_expired(expires):
        source = record.video_url
        notice = (
            "Playing the provider's signed link"
            + (f" (valid until {expires:%Y-%m-%d %H:%M UTC})" if expires else "")
            + "; no stored copy of this video exists."
        )
    elif record.video_url:
        source = None
        notice = (
            f"The video link expired ({expires:%Y-%m-%d %H:%M UTC}) and no stored copy exists. "
            "Add a GPTProto download task to keep videos."
        )
    else:
        source, notice = None, "No video for this task."
    return {"record": record, "source": source, "stored": stored, "poster": poster, "notice": notice}


def _task_videos(
    request: Request, session: SessionDep, dag_id: str, run_id: str, task_id: str, map_index: int
) -> tuple[str, list[dict[str, Any]]]:
    """The task instance's operator name and videos; 404 when it does not exist."""
    operator = task_operator(session, dag_id, run_id, task_id, map_index)
    if operator is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Task instance not found")
    records = task_records(session, dag_id, run_id, task_id, map_index)
    return operator, [_task_video(request, r, i) for i, r in enumerate(records)]


def _servable(record: VideoRecord, kind: MediaKind) -> bool:
    """Whether the media endpoint would serve this record's stored file (a card plays only those)."""
    try:
        servable_file(record, kind)
    except HTTPException:
        return False
    return True


def _public(record: VideoRecord) -> dict[str, Any]:
    """A record as JSON: metadata and ids, not the server-side locations."""
    data = asdict(record)
    for key in ("stored_uri", "poster_uri", "extra"):
        data.pop(key)
    data["stored"] = record.stored_uri is not None
    return data


def _readable_dag_ids(user: Any) -> set[str]:
    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


@dataclass
class Gallery:
    """One page of the gallery for the requesting user."""

    cards: list[tuple[VideoRecord, str | None, str | None]]  # record, poster URL, stored video URL
    dag_ids: list[str]
    total: int
    dag_id: str | None
    offset: int
    limit: int


def read_gallery(
    request: Request,
    user: GetUserDep,
    session: SessionDep,
    dag_id: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = PAGE_SIZE,
) -> Gallery:
    readable = _readable_dag_ids(user)
    records, total = gallery_page(session, readable, dag_id or None, offset, limit)
    media = _media_base(request)
    cards = [
        (
            r,
            f"{media}/event/{r.event_id}/poster" if r.poster_uri else None,
            f"{media}/event/{r.event_id}/video" if _servable(r, "video") else None,
        )
        for r in records
    ]
    return Gallery(cards, gallery_dag_ids(session, readable), total, dag_id or None, offset, limit)


GalleryDep = Annotated[Gallery, Depends(read_gallery)]


# -------------------------------------------------------------------------------- task instances
@router.get("/ti/{dag_id}/{run_id}/{task_id}", response_class=HTMLResponse, dependencies=[READ_TASK_INSTANCE])
def video_tab(
    request: Request,
    dag_id: str,
    run_id: str,
    task_id: str,
    session: SessionDep,
    map_index: str | None = None,
) -> HTMLResponse:
    """The Video tab of a task instance (a review task's links to its review page)."""
    index = _map_index(map_index)
    operator, videos = _task_videos(request, session, dag_id, run_id, task_id, index)
    label = f"{task_id} ({operator})" if operator else task_id
    rows = [(v["record"], v["source"], v["stored"], v["notice"]) for v in videos]
    review = (review_request(session, dag_id, run_id, task_id, index) or (None,))[0]
    href = f"{_ti_base(request, 'review', dag_id, run_id, task_id)}?map_index={index}"
    return HTMLResponse(pages.video_tab(label, rows, href if review else None))


@router.get("/api/ti/{dag_id}/{run_id}/{task_id}", dependencies=[READ_TASK_INSTANCE])
def task_videos(
    request: Request, dag_id: str, run_id: str, task_id: str, session: SessionDep, map_index: int = -1
) -> dict[str, Any]:
    """The Video tab's data as JSON."""
    _, videos = _task_videos(request, session, dag_id, run_id, task_id, map_index)
    return {"videos": [{**v, "record": _public(v["record"])} for v in videos]}


@router.get("/media/ti/{dag_id}/{run_id}/{task_id}/{index}/{kind}", dependencies=[READ_TASK_INSTANCE])
def task_media(
    dag_id: str,
    run_id: str,
    task_id: str,
    index: int,
    kind: MediaKind,
    session: SessionDep,
    map_index: int = -1,
) -> Any:
    """The stored video (or poster) a task instance recorded, the ``index``-th of its results."""
    records = task_records(session, dag_id, run_id, task_id, map_index)
    if not 0 <= index < len(records):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "This task instance recorded no such video")
    return file_response(records[index], kind)


# --------------------------------------------------------------------------------------- gallery
@router.get("/videos", response_class=HTMLResponse, dependencies=[READ_ASSETS])
def gallery_view(found: GalleryDep) -> HTMLResponse:
    """The "GPTProto videos" page."""
    return HTMLResponse(
        pages.gallery(
            ui_base_path(), found.cards, found.dag_ids, found.dag_id, found.offset, found.limit, found.total
        )
    )


@router.get("/api/videos", dependencies=[READ_ASSETS])
def gallery_data(found: GalleryDep) -> dict[str, Any]:
    """The gallery's data as JSON."""
    return {
        "total_entries": found.total,
        "dag_ids": found.dag_ids,
        "videos": [{**_public(r), "poster": poster, "video": video} for r, poster, video in found.cards],
    }


@router.get("/media/event/{event_id}/{kind}", dependencies=[READ_ASSETS])
def event_media(event_id: int, kind: MediaKind, user: GetUserDep, session: SessionDep) -> Any:
    """The video (or poster) a ``gptproto_videos`` asset event recorded, if its DAG is readable."""
    event = event_by_id(session, event_id)
    if event is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such GPTProto video event")
    if not event.source_dag_id or event.source_dag_id not in _readable_dag_ids(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
    return file_response(event_record(event), kind)


# ---------------------------------------------------------------------------------------- review
@router.get(
    "/review/{dag_id}/{run_id}/{task_id}",
    response_class=HTMLResponse,
    dependencies=[READ_TASK_INSTANCE, READ_HITL],
)
def review_page(
    request: Request,
    dag_id: str,
    run_id: str,
    task_id: str,
    session: SessionDep,
    map_index: str | None = None,
) -> HTMLResponse:
    """A review task's takes side by side; the page answers through Airflow's own HITL API
    (``PATCH .../hitlDetails``, as the signed-in user), so Airflow records who answered and checks
    that they may."""
    index = _map_index(map_index)
    found = review_request(session, dag_id, run_id, task_id, index)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Task instance not found")
    review, hitl = found
    cache: dict[tuple[str, str, int], list[VideoRecord]] = {}
    groups = [
        {
            "number": group.get("number", number),
            "param": _text(group.get("param")),
            "prompt": _text(group.get("prompt")),
            "failed": [k for k in _list(group.get("failed")) if isinstance(k, int)],
            "takes": [_review_take(request, session, dag_id, t, cache) for t in _mappings(group, "takes")],
        }
        for number, group in enumerate(_mappings(review or {}, "groups"), 1)
    ]
    dag, run, task = (quote(part, safe="") for part in (dag_id, run_id, task_id))
    api = f"{ui_base_path()}/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/{index}/hitlDetails"
    return HTMLResponse(pages.review(task_id, groups, hitl, api, has_review=review is not None))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _mappings(parent: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The mappings listed under ``key`` (any task may have pushed the XCom: anything else is left out)."""
    return [item for item in _list(parent.get(key)) if isinstance(item, Mapping)]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _review_take(
    request: Request,
    session: SessionDep,
    dag_id: str,
    take: Mapping[str, Any],
    cache: dict[tuple[str, str, int], list[VideoRecord]],
) -> dict[str, Any]:
    """A take as its source task recorded it (so it plays through the Video tab's media endpoint),
    else as the review recorded it (its signed link while valid)."""
    source: Mapping[str, Any] = take["source"] if isinstance(take.get("source"), Mapping) else {}
    run_id, task_id = _text(source.get("run_id")), _text(source.get("task_id"))
    map_index: int = source["map_index"] if isinstance(source.get("map_index"), int) else -1
    records: list[VideoRecord] = []
    if run_id and task_id and source.get("dag_id") == dag_id:  # only tasks of the DAG the user may read
        key = (run_id, task_id, map_index)
        if key not in cache:
            cache[key] = task_records(session, dag_id, *key)
        records = cache[key]
    remote_id, uri = _text(take.get("gptproto_task_id")), _text(take.get("uri"))
    index, record = next(
        (
            (i, r)
            for i, r in enumerate(records)
            if (remote_id and r.gptproto_task_id == remote_id) or (uri and r.stored_uri == uri)
        ),
        (-1, None),
    )
    if record is None:
        url = _text(take.get("video_url"))
        record = VideoRecord(
            dag_id, run_id or "", task_id or "", map_index, gptproto_task_id=remote_id, video_url=url
        )
        record.video_url_expires = signed_url_expiry(url, None) if url else None
    usage = take.get("usage") if isinstance(take.get("usage"), Mapping) else record.usage
    return {
        **_task_video(request, record, index),
        "label": _text(take.get("label")) or f"take {take.get('take')}",
        "fields": {
            "Seed": take.get("seed", record.seed),
            "Duration": take.get("duration", record.duration),
            "Resolution": take.get("resolution", record.dimension),
            "Usage": ", ".join(f"{k}: {v}" for k, v in usage.items()) if usage else None,
            "GPTProto task": remote_id,
        },
        "tab_href": pages.video_tab_href(ui_base_path(), record) if record.task_id else None,
    }
