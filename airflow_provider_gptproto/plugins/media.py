"""Serving a recorded video or poster: only files a task or an asset event recorded, and only once
checked, since a DAG can record anything (local regular file, media suffix, recorded size, inside
``[gptproto] ui_media_roots``).
"""

from __future__ import annotations

import os
from typing import Literal

from fastapi import HTTPException, status
from starlette.responses import FileResponse

from airflow_provider_gptproto.plugins.locations import inside_media_roots, local_path
from airflow_provider_gptproto.plugins.records import VideoRecord

MediaKind = Literal["video", "poster"]
MEDIA_TYPES = {
    "video": {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime"},
    "poster": {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"},
}


def servable_file(record: VideoRecord, kind: MediaKind) -> tuple[str, str]:
    """(real path, media type) of the recorded file, or 404 saying what is wrong with it."""
    uri = record.stored_uri if kind == "video" else record.poster_uri
    path = local_path(uri)
    if path is None:
        what = "no stored copy recorded" if not uri else "the stored copy is not on a local filesystem"
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No {kind} to serve: {what}")
    real = os.path.realpath(path)
    media_type = MEDIA_TYPES[kind].get(os.path.splitext(real)[1].lower())
    if media_type is None or not os.path.isabs(path):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"No {kind} to serve: the recorded file is not a {kind}"
        )
    if not inside_media_roots(real):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"No {kind} to serve: outside [gptproto] ui_media_roots"
        )
    if not os.path.isfile(real):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No {kind} to serve: the stored file is gone")
    if kind == "video" and record.bytes is not None and os.path.getsize(real) != record.bytes:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "No video to serve: the file changed since it was stored"
        )
    return real, media_type


def file_response(record: VideoRecord, kind: MediaKind) -> FileResponse:
    path, media_type = servable_file(record, kind)
    filename = f"{record.gptproto_task_id or 'video'}{os.path.splitext(path)[1]}"
    return FileResponse(
        path,
        media_type=media_type,
        filename=filename,
        content_disposition_type="inline",
        headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
