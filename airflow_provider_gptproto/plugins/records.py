"""What the plugin knows about a video, read from Airflow's metadata DB.

Two sources only: a task instance's own results (its ``return_value`` and the ``gptproto_video_url``
XCom the provider's operators push; for a batch, the manifest its result names) and events of the
``gptproto_videos`` asset. A file is ever served only from a location one of them recorded; callers
pass ids, never paths.
"""

from __future__ import annotations

import functools
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.models.asset import AssetEvent, AssetModel
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from sqlalchemy import func, select

from airflow_provider_gptproto.links.gptproto import VIDEO_URL_XCOM_KEY
from airflow_provider_gptproto.plugins.locations import inside_media_roots, local_path
from airflow_provider_gptproto.plugins.signed_urls import signed_url_expiry
from airflow_provider_gptproto.utils.poster import POSTER_KEY

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

VIDEOS_ASSET = "gptproto_videos"
RETURN_VALUE = "return_value"
# A batch result names its manifest; the Video tab shows this many of its videos (the manifest has all).
MANIFEST_KEY = "manifest"
BATCH_TAB_LIMIT = 100


@dataclass
class VideoRecord:
    """One video as the UI shows it; ``stored_uri``/``poster_uri`` come from records, never requests."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    gptproto_task_id: str | None = None
    prompt: str | None = None
    model: str | None = None
    seed: Any = None
    duration: Any = None
    dimension: Any = None
    bytes: int | None = None
    sha256: str | None = None
    usage: dict[str, Any] | None = None
    stored_uri: str | None = None
    poster_uri: str | None = None
    video_url: str | None = None
    video_url_expires: datetime | None = None
    event_id: int | None = None
    timestamp: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """The fields the Video tab lists, in order, empty ones left out."""
        fields = {
            "Prompt": self.prompt,
            "Model": self.model,
            "Seed": self.seed,
            "Duration": self.duration,
            "Dimension / resolution": self.dimension,
            "Bytes": self.bytes,
            "SHA-256": self.sha256,
            "Usage": ", ".join(f"{k}: {v}" for k, v in self.usage.items()) if self.usage else None,
            "GPTProto task": self.gptproto_task_id,
            "Stored at": self.stored_uri,
        }
        return {k: v for k, v in fields.items() if v not in (None, "")}


# ------------------------------------------------------------------------------------ task results
def _xcoms(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
    rows = session.scalars(
        XComModel.get_many(
            run_id=run_id,
            key=None,
            task_ids=task_id,
            dag_ids=dag_id,
            map_indexes=map_index,
        )
    ).all()
    # The query is typed as yielding 1-tuples; at run time scalars() gives the models themselves.
    models = [row[0] if isinstance(row, tuple) else row for row in rows]
    return {model.key: XComModel.deserialize_value(model) for model in models}


def task_records(
    session: Session, dag_id: str, run_id: str, task_id: str, map_index: int
) -> list[VideoRecord]:
    """The videos one task instance produced (a batch result lists several), stored copies included.

    Any operator counts whose results look like the provider's (generate, download, batch): a dict
    or a list of dicts with a ``uri`` or a ``video_url``, or the ``gptproto_video_url`` XCom.
    """
    xcoms = _xcoms(session, dag_id, run_id, task_id, map_index)
    result = xcoms.get(RETURN_VALUE)
    items: list[Any] = (
        [result] if isinstance(result, Mapping) else list(result) if isinstance(result, list) else []
    )
    if isinstance(result, Mapping) and result.get(MANIFEST_KEY):
        items = manifest_videos(_text(result.get(MANIFEST_KEY)))
    records = [
        _from_result(item, dag_id, run_id, task_id, map_index)
        for item in items
        if isinstance(item, Mapping) and (item.get("uri") or item.get("video_url"))
    ]
    pushed_url = xcoms.get(VIDEO_URL_XCOM_KEY)
    if not records and isinstance(pushed_url, str) and pushed_url:
        records = [VideoRecord(dag_id, run_id, task_id, map_index, video_url=pushed_url)]
        records[0].video_url_expires = signed_url_expiry(pushed_url, None)
    for record in records:
        if record.video_url is None and isinstance(pushed_url, str) and pushed_url and len(records) == 1:
            record.video_url = pushed_url
            record.video_url_expires = signed_url_expiry(pushed_url, None)
        if record.stored_uri is None and record.gptproto_task_id:
            _attach_stored_copy(session, record)
    return records


def manifest_videos(manifest_uri: str | None, limit: int = BATCH_TAB_LIMIT) -> list[dict[str, Any]]:
    """The first ``limit`` succeeded rows of a batch's ``manifest.jsonl``, when it is a readable local file.

    The manifest's location comes from the task's own result, and it is read only inside
    ``[gptproto] ui_media_roots`` (when set), like the videos themselves.
    """
    path = local_path(manifest_uri)
    real = os.path.realpath(path) if path and os.path.isabs(path) else None
    if real is None or not inside_media_roots(real):
        return []
    try:
        info = os.stat(real)
    except OSError:
        return []
    if not stat.S_ISREG(info.st_mode):
        return []
    return [dict(row) for row in _succeeded_rows(real, info.st_mtime_ns, info.st_size, limit)]


@functools.lru_cache(maxsize=32)
def _succeeded_rows(real: str, mtime_ns: int, size: int, limit: int) -> tuple[dict[str, Any], ...]:
    """Parse a manifest once per version of it: the Video tab and each of its media requests ask
    again, and a batch's manifest does not change once its task has ended (the key covers a rewrite)."""
    rows: list[dict[str, Any]] = []
    with open(real, encoding="utf-8") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # not a manifest line; the rest may still be
            if isinstance(row, dict) and row.get("status") == "succeeded" and row.get("uri"):
                rows.append(row)
                if len(rows) >= limit:
                    break
    return tuple(rows)


def _from_result(
    item: Mapping[str, Any], dag_id: str, run_id: str, task_id: str, map_index: int
) -> VideoRecord:
    raw_request = item.get("request")
    request: Mapping[str, Any] = raw_request if isinstance(raw_request, Mapping) else {}
    video_url = item.get("video_url") if isinstance(item.get("video_url"), str) else None
    record = VideoRecord(
        dag_id,
        run_id,
        task_id,
        map_index,
        gptproto_task_id=_text(item.get("task_id")),
        prompt=_text(item.get("prompt") or request.get("prompt")),
        model=_text(item.get("model") or request.get("model")),
        seed=item.get("seed") if item.get("seed") is not None else request.get("seed"),
        duration=item.get("duration") or request.get("duration"),
        dimension=item.get("dimension") or request.get("dimension") or request.get("resolution"),
        bytes=item.get("bytes") if isinstance(item.get("bytes"), int) else None,
        sha256=_text(item.get("sha256")),
        usage=item.get("usage") if isinstance(item.get("usage"), Mapping) else None,
        stored_uri=_text(item.get("uri")),
        poster_uri=_text(item.get(POSTER_KEY)),
        video_url=video_url,
    )
    if video_url:
        record.video_url_expires = signed_url_expiry(video_url, _text(item.get("updated_at")))
    return record


def _attach_stored_copy(session: Session, record: VideoRecord) -> None:
    """A generate task's video counts as stored when a download in the same run recorded it."""
    for event in session.scalars(
        _events_query()
        .where(AssetEvent.source_dag_id == record.dag_id, AssetEvent.source_run_id == record.run_id)
        .order_by(AssetEvent.id.desc())
    ):
        extra = event.extra or {}
        if extra.get("task_id") == record.gptproto_task_id and extra.get("uri"):
            record.stored_uri = _text(extra.get("uri"))
            record.poster_uri = _text(extra.get(POSTER_KEY))
            record.sha256 = record.sha256 or _text(extra.get("sha256"))
            record.bytes = record.bytes or (extra["bytes"] if isinstance(extra.get("bytes"), int) else None)
            record.event_id = event.id
            return


def task_operator(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The operator's name as the UI shows it, or None when no such task instance exists."""
    ti = session.scalar(
        select(TaskInstance).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
    )
    return (ti.custom_operator_name or ti.operator or "") if ti is not None else None


# ------------------------------------------------------------------------------------ asset events
def _events_query() -> Any:
    return (
        select(AssetEvent)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(AssetModel.name == VIDEOS_ASSET)
    )


def event_record(event: AssetEvent) -> VideoRecord:
    extra = event.extra or {}
    record = VideoRecord(
        dag_id=event.source_dag_id or "",
        run_id=event.source_run_id or "",
        task_id=event.source_task_id or "",
        map_index=event.source_map_index if event.source_map_index is not None else -1,
        gptproto_task_id=_text(extra.get("task_id")),
        prompt=_text(extra.get("prompt")),
        model=_text(extra.get("model")),
        seed=extra.get("seed"),
        duration=extra.get("duration"),
        dimension=extra.get("dimension"),
        bytes=extra.get("bytes") if isinstance(extra.get("bytes"), int) else None,
        sha256=_text(extra.get("sha256")),
        stored_uri=_text(extra.get("uri")),
        poster_uri=_text(extra.get(POSTER_KEY)),
        event_id=event.id,
        timestamp=event.timestamp,
    )
    if extra.get(MANIFEST_KEY) and record.prompt is None:  # one event per batch, see the batch operator
        record.prompt = (
            f"Batch: {extra.get('succeeded')} of {extra.get('total')} videos (see the task's Video tab)"
        )
    return record


def gallery_page(
    session: Session, readable_dag_ids: set[str], dag_id: str | None, offset: int, limit: int
) -> tuple[list[VideoRecord], int]:
    """Newest first; only events a DAG the user may read produced (API-made events have no DAG)."""
    allowed = readable_dag_ids & {dag_id} if dag_id else readable_dag_ids
    query = _events_query().where(AssetEvent.source_dag_id.in_(sorted(allowed)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    events = session.scalars(
        query.order_by(AssetEvent.timestamp.desc(), AssetEvent.id.desc()).offset(offset).limit(limit)
    )
    return [event_record(e) for e in events], int(total)


def gallery_dag_ids(session: Session, readable_dag_ids: set[str]) -> list[str]:
    """The DAGs the filter offers: those with at least one video the user may see."""
    query = (
        select(AssetEvent.source_dag_id)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(AssetModel.name == VIDEOS_ASSET, AssetEvent.source_dag_id.in_(sorted(readable_dag_ids)))
        .distinct()
    )
    return sorted(d for d in session.scalars(query) if d)


def event_by_id(session: Session, event_id: int) -> AssetEvent | None:
    return session.scalar(_events_query().where(AssetEvent.id == event_id))


def _text(value: Any) -> str | None:
    return (
        str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) else None
    )
