"""The HTTP half of a video download: fetch from the pre-signed URL, check the reply, stream it to storage.

The API key is never sent: video hosts are third parties and pre-signed URLs need no credentials.
Writing the bytes (atomically, hashed, size-checked) is :mod:`airflow_provider_gptproto.storage`'s job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import requests
from airflow.providers.common.compat.sdk import get_hook_lineage_collector

from airflow_provider_gptproto.exceptions import GPTProtoVideoDownloadError, GPTProtoVideoURLExpiredError
from airflow_provider_gptproto.storage import READ_BYTES, DownloadedVideo, write_stream_atomically

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

MAX_REDIRECTS = 5
ALLOWED_CONTENT_TYPES = ("video/", "application/octet-stream", "binary/octet-stream")


def check_video_url(url: str) -> None:
    """Only http(s): no file://, ftp://, data: or anything that could read local or internal data."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise GPTProtoVideoDownloadError(
            f"Refusing to download from {urlsplit(url).scheme or 'a scheme-less'} URL: only http(s)"
        )


def open_stream(
    session: requests.Session, url: str, timeout: tuple[float, float], user_agent: str
) -> requests.Response:
    """GET with redirects followed by hand, so each hop's scheme is checked before it is requested."""
    for _ in range(MAX_REDIRECTS + 1):
        check_video_url(url)
        try:
            resp = session.get(
                url, stream=True, allow_redirects=False, timeout=timeout, headers={"User-Agent": user_agent}
            )
        except requests.RequestException as exc:
            raise GPTProtoVideoDownloadError(f"Video download failed: {type(exc).__name__}") from exc
        if resp.is_redirect:
            location = resp.headers.get("Location", "")
            resp.close()
            url = urljoin(url, location)
            continue
        if resp.status_code in (403, 404, 410):
            resp.close()
            raise GPTProtoVideoURLExpiredError(
                f"Video URL answered HTTP {resp.status_code} (expired or revoked)"
            )
        if resp.status_code >= 400:
            resp.close()
            raise GPTProtoVideoDownloadError(f"Video URL answered HTTP {resp.status_code}")
        return resp
    raise GPTProtoVideoDownloadError(f"Video URL redirected more than {MAX_REDIRECTS} times")


def write_atomically(
    resp: requests.Response, destination: ObjectStoragePath, max_bytes: int | None, *, sweep: bool = True
) -> DownloadedVideo:
    """Check ``resp``'s headers, stream its body into ``destination`` atomically, close it, record lineage.

    ``sweep=False`` skips looking for a killed download's leftovers of this destination (which
    lists its folder), for a caller that runs ``storage.sweep_stale_parts`` on the whole folder.
    """
    try:
        content_type, expected = _check_headers(resp, max_bytes)
        saved = write_stream_atomically(
            resp.iter_content(READ_BYTES),
            destination,
            content_type=content_type,
            expected=expected,
            max_bytes=max_bytes,
            sweep=sweep,
            stream_errors=(requests.RequestException,),
        )
    finally:
        resp.close()
    # Once, for the destination: the temporary file is written without the lineage-recording wrapper.
    get_hook_lineage_collector().add_output_asset(context=destination, uri=str(destination))
    return saved


def content_length(value: str | None) -> int | None:
    """A Content-Length header as a byte count; None when absent or not a plain number."""
    return int(value) if value and value.isdigit() else None


def _check_headers(resp: requests.Response, max_bytes: int | None) -> tuple[str, int | None]:
    content_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not content_type.startswith(ALLOWED_CONTENT_TYPES):
        raise GPTProtoVideoDownloadError(
            f"Video URL served Content-Type {content_type or 'none'!r}, expected video/*"
        )
    expected = content_length(resp.headers.get("Content-Length"))
    if max_bytes is not None and expected is not None and expected > max_bytes:
        raise GPTProtoVideoDownloadError(f"Video is {expected} bytes, over max_bytes={max_bytes}")
    return content_type, expected
