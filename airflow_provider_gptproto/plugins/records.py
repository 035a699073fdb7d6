"""What the plugin knows about a video, read from Airflow's metadata DB: a task instance's results
(and a batch's manifest) and ``gptproto_videos`` asset events. Files are served only from locations
these recorded; callers pass ids, never paths.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from airflow.models.asset import AssetEvent, AssetModel
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from pydantic import StrictFloat, TypeAdapter, ValidationError
from sqlalchemy import func, select
from typing_extensions import TypedDict, get_type_hints

from airflow_provider_gptproto.links.gptproto import VIDEO_URL_XCOM_KEY
from airflow_provider_gptproto.models import results as typed
from airflow_provider_gptproto.plugins.locations import inside_media_roots, local_path
from airflow_provider_gptproto.plugins.signed_urls import signed_url_expiry

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

VIDEOS_ASSET = "gptproto_videos"
RETURN_VALUE = "return_value"
REVIEW_XCOM = "gptproto_review"  # what a GPTProtoReviewVideosOperator shows its reviewer
# The Video tab shows this many of a batch's videos (its manifest has all).
BATCH_TAB_LIMIT = 100
T = TypeVar("T", bound=Mapping[str, object])


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
    take: int | None = None  # of ``takes``, when the task made several of each video
    takes: int | None = None
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
            "Take": f"{self.take} of {self.takes}" if self.take and self.takes and self.takes > 1 else None,
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
        XComModel.get_many(run_id=run_id, key=None, task_ids=task_id, dag_ids=dag_id, map_indexes=map_index)
    ).all()
    # The query is typed as yielding 1-tuples; at run time scalars() gives the models themselves.
    models = [row[0] if isinstance(row, tuple) else row for row in rows]
    return {model.key: XComModel.deserialize_value(model) for model in models}


def task_records(
    session: Session, dag_id: str, run_id: str, task_id: str, map_index: int
) -> list[VideoRecord]:
    """The videos one task instance produced (a batch result lists several), stored copies included.

    Its ``return_value`` (a result, or a list of them) is read by kind, see :func:`read_result`;
    the ``gptproto_video_url`` XCom stands in when no result names a video.
    """
    xcoms = _xcoms(session, dag_id, run_id, task_id, map_index)
    result = xcoms.get(RETURN_VALUE)
    items = [result] if isinstance(result, Mapping) else result if isinstance(result, list) else []
    base = VideoRecord(dag_id, run_id, task_id, map_index)
    records = [r for item in items if isinstance(item, Mapping) for r in read_result(item, base)]
    records = [r for r in records if r.stored_uri or r.video_url]
    pushed_url = xcoms.get(VIDEO_URL_XCOM_KEY)
    pushed_url = pushed_url if isinstance(pushed_url, str) and pushed_url else None
    records = records or ([replace(base)] if pushed_url else [])
    for record in records:
        if record.video_url is None and pushed_url and len(records) == 1:
            record.video_url, record.video_url_expires = pushed_url, signed_url_expiry(pushed_url, None)
        if record.stored_uri is None and record.gptproto_task_id:
            _attach_stored_copy(session, record)
    return records


def result_kind(result: Mapping[str, Any]) -> typed.Kind:
    """The kind a result names; one naming none this release knows (an older release's, or a task's
    own) is told by its shape: ``manifest``, ``status`` (with ``uri``: a saved video), else a download.
    """
    kind = result.get(typed.KIND_KEY)
    if kind in _TYPES:
        return cast("typed.Kind", kind)
    if "manifest" in result:
        return "batch"
    return ("saved_video" if "uri" in result else "generate") if "status" in result else "download"


def read_result(result: Mapping[str, Any], base: VideoRecord) -> list[VideoRecord]:
    """The videos a result names, read as the type of its kind (a batch's are its manifest's rows).

    :param result: a task's result (XCom) or an asset event's extra.
    :param base: the record of the task instance (or event) they belong to.
    """
    if result.get(typed.KIND_KEY) == "plan":  # a dry run: no video was made
        return []
    kind = result_kind(result)
    if kind == "storyboard":
        storyboard = as_type(typed.StoryboardResult, result)
        record = _record(base, storyboard)
        record.extra["shots"] = storyboard_shots(storyboard.get("storyboard_uri"))
        return [record]
    if kind != "batch":
        return [_record(base, as_type(_TYPES[kind], result))]
    manifest = as_type(typed.BatchSummary, result).get("manifest")
    return [_record(base, as_type(typed.ManifestRow, row)) for row in manifest_videos(manifest)]


def as_type(kind: type[T], raw: Mapping[str, Any]) -> T:
    """``raw`` as the TypedDict ``kind``: the fields it declares, each only when of the declared type.

    XCom and asset-event extras are written by any task: a field of another type is left out, not
    shown (nor does it fail the page).
    """
    checked = {}
    for name, adapter in _adapters(kind).items():
        if name in raw:
            with contextlib.suppress(ValidationError):
                checked[name] = adapter.validate_python(raw[name])
    return cast("T", checked)


@functools.cache
def _adapters(kind: Any) -> dict[str, TypeAdapter[Any]]:
    return {name: TypeAdapter(hint) for name, hint in get_type_hints(kind).items()}


def _record(base: VideoRecord, result: Mapping[str, Any]) -> VideoRecord:
    """A video from a typed result or manifest row: its fields, and its request's for those it lacks."""
    request = as_type(typed.RequestSummary, result.get("request") or {})
    own = {name: value for name, value in result.items() if value is not None}
    record = replace(base, **{**_named(request), **_named(own)})
    if record.video_url:
        record.video_url_expires = signed_url_expiry(record.video_url, result.get("updated_at"))
    return record


def _named(values: Mapping[str, Any]) -> dict[str, Any]:
    """Result fields under the names of VideoRecord's (those it has)."""
    return {
        _RECORD_NAMES.get(k, k): v for k, v in values.items() if _RECORD_NAMES.get(k, k) in _RECORD_FIELDS
    }


_TYPES: dict[typed.Kind, Any] = {
    "generate": typed.GenerateResult,
    "saved_video": typed.SavedVideoResult,
    "download": typed.DownloadResult,
    "batch": typed.BatchSummary,
    "storyboard": typed.StoryboardResult,
}
_RECORD_NAMES = {"task_id": "gptproto_task_id", "uri": "stored_uri", "resolution": "dimension"}
_RECORD_FIELDS = {f.name for f in fields(VideoRecord)}  # no result type has dag_id, run_id or map_index


def manifest_videos(manifest_uri: str | None, limit: int = BATCH_TAB_LIMIT) -> list[dict[str, Any]]:
    """The first ``limit`` succeeded rows of a batch's ``manifest.jsonl``, when it is a readable local file.

    The manifest's location comes from the task's own result, and it is read only inside
    ``[gptproto] ui_media_roots`` (when set), like the videos themselves.
    """
    found = _readable(manifest_uri)
    return [dict(row) for row in _succeeded_rows(*found, limit)] if found else []


def storyboard_shots(storyboard_uri: str | None) -> list[dict[str, Any]]:
    """Each shot's index, prompt and span (start, end in seconds) from a storyboard's
    ``storyboard.json``, read like a manifest: a local file inside the media roots, else nothing."""
    found = _readable(storyboard_uri)
    if found is None:
        return []
    try:
        with open(found[0], encoding="utf-8") as handle:
            shots = json.load(handle).get("shots")
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(shots, list):
        return []
    empty = dict.fromkeys(_Shot.__annotations__)
    return [{**empty, **as_type(_Shot, shot)} for shot in shots if isinstance(shot, dict)]


class _Shot(TypedDict, total=False):
    """What the Video tab shows of a shot; a field of another type is left out (any task may have
    written the file)."""

    index: Any
    prompt: str
    start: StrictFloat  # an int or a float, as a float; not a bool or a string
    end: StrictFloat


def _readable(uri: str | None) -> tuple[str, int, int] | None:
    """(real path, mtime_ns, size) of a regular local file inside ``[gptproto] ui_media_roots``."""
    path = local_path(uri)
    real = os.path.realpath(path) if path and os.path.isabs(path) else None
    if real is None or not inside_media_roots(real):
        return None
    try:
        info = os.stat(real)
    except OSError:
        return None
    return (real, info.st_mtime_ns, info.st_size) if stat.S_ISREG(info.st_mode) else None


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


def _attach_stored_copy(session: Session, record: VideoRecord) -> None:
    """A generate task's video counts as stored when a download in the same run recorded it."""
    for event in session.scalars(
        _events_query()
        .where(AssetEvent.source_dag_id == record.dag_id, AssetEvent.source_run_id == record.run_id)
        .order_by(AssetEvent.id.desc())
    ):
        saved = as_type(typed.DownloadResult, event.extra or {})
        if saved.get("task_id") == record.gptproto_task_id and saved.get("uri"):
            record.stored_uri, record.poster_uri = saved.get("uri"), saved.get("poster_uri")
            record.sha256 = record.sha256 or saved.get("sha256")
            record.bytes = record.bytes or saved.get("bytes")
            record.event_id = event.id
            return


def _task_instance(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
    return session.scalar(
        select(TaskInstance).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
    )


def task_operator(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The operator's name as the UI shows it, or None when no such task instance exists."""
    ti = _task_instance(session, dag_id, run_id, task_id, map_index)
    return (ti.custom_operator_name or ti.operator or "") if ti is not None else None


def review_request(
    session: Session, dag_id: str, run_id: str, task_id: str, map_index: int
) -> tuple[Mapping[str, Any] | None, Any] | None:
    """A review task's ``gptproto_review`` XCom (None when it pushed none) and its HITL detail row
    (None until it asks); None when no such task instance exists."""
    from airflow.models.hitl import HITLDetail  # Airflow 3.1+, like the plugin's views

    ti = _task_instance(session, dag_id, run_id, task_id, map_index)
    if ti is None:
        return None
    review = _xcoms(session, dag_id, run_id, task_id, map_index).get(REVIEW_XCOM)
    hitl = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id))
    return (review if isinstance(review, Mapping) else None), hitl


# ------------------------------------------------------------------------------------ asset events
def _events_query() -> Any:
    return (
        select(AssetEvent)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(AssetModel.name == VIDEOS_ASSET)
    )


def event_record(event: AssetEvent) -> VideoRecord:
    """A ``gptproto_videos`` event's video: its extra is a download result or (one per batch) a summary."""
    extra = event.extra or {}
    base = VideoRecord(
        dag_id=event.source_dag_id or "",
        run_id=event.source_run_id or "",
        task_id=event.source_task_id or "",
        map_index=event.source_map_index if event.source_map_index is not None else -1,
        event_id=event.id,
        timestamp=event.timestamp,
    )
    if result_kind(extra) != "batch":
        return _record(base, as_type(typed.DownloadResult, extra))
    summary = as_type(typed.BatchSummary, extra)
    counts = f"{summary.get('succeeded')} of {summary.get('total')}"
    return replace(base, prompt=f"Batch: {counts} videos (see the task's Video tab)")


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
    query = _events_query().with_only_columns(AssetEvent.source_dag_id)
    query = query.where(AssetEvent.source_dag_id.in_(sorted(readable_dag_ids))).distinct()
    return sorted(d for d in session.scalars(query) if d)


def event_by_id(session: Session, event_id: int) -> AssetEvent | None:
    return session.scalar(_events_query().where(AssetEvent.id == event_id))
