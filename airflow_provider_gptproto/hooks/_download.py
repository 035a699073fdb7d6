"""Stream a video from its pre-signed URL into any ObjectStoragePath, atomically.

Memory stays flat whatever the size (fixed-size chunks), the destination only ever holds a whole,
verified file (we write a hidden temporary sibling and rename it at the end), and the API key is
never sent: video hosts are third parties and pre-signed URLs need no credentials.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from airflow_provider_gptproto.exceptions import GPTProtoError

# 256 KiB: read, hashed and written while still in the CPU cache. 1 MiB chunks ran at about half
# the throughput (each chunk is evicted before it is written); smaller ones pay per-call overhead.
CHUNK_BYTES = 256 * 1024
MAX_REDIRECTS = 5
ALLOWED_CONTENT_TYPES = ("video/", "application/octet-stream", "binary/octet-stream")


class VideoDownloadError(GPTProtoError):
    """The video could not be fetched or failed verification; nothing was left at the destination."""


class VideoURLExpiredError(VideoDownloadError):
    """The pre-signed URL is no longer valid (403/404/410); a fresh one may come from get_task."""


@dataclass(frozen=True)
class DownloadedVideo:
    uri: str
    bytes: int
    sha256: str
    content_type: str


def check_video_url(url: str) -> None:
    """Only http(s): no file://, ftp://, data: or anything that could read local or internal data."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise VideoDownloadError(
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
            raise VideoDownloadError(f"Video download failed: {type(exc).__name__}") from exc
        if resp.is_redirect:
            location = resp.headers.get("Location", "")
            resp.close()
            url = urljoin(url, location)
            continue
        if resp.status_code in (403, 404, 410):
            resp.close()
            raise VideoURLExpiredError(f"Video URL answered HTTP {resp.status_code} (expired or revoked)")
        if resp.status_code >= 400:
            resp.close()
            raise VideoDownloadError(f"Video URL answered HTTP {resp.status_code}")
        return resp
    raise VideoDownloadError(f"Video URL redirected more than {MAX_REDIRECTS} times")


def write_atomically(resp: requests.Response, destination: Any, max_bytes: int | None) -> DownloadedVideo:
    """Stream ``resp`` into ``destination`` (an ObjectStoragePath) via a temporary sibling."""
    temp = destination.parent / f".{destination.name}.{uuid.uuid4().hex}.part"
    digest = hashlib.sha256()
    written = 0
    try:
        content_type, expected = _check_headers(resp, max_bytes)
        with temp.open("wb") as out:
            for chunk in resp.iter_content(CHUNK_BYTES):
                written += len(chunk)
                if max_bytes is not None and written > max_bytes:
                    raise VideoDownloadError(f"Video exceeds max_bytes={max_bytes}; download aborted")
                digest.update(chunk)
                out.write(chunk)
        if expected is not None and written != expected:
            raise VideoDownloadError(f"Video truncated: got {written} of {expected} bytes")
        temp.rename(destination)
    except requests.RequestException as exc:
        _discard(temp)
        raise VideoDownloadError(
            f"Video truncated: the stream broke after {written} complete bytes ({type(exc).__name__})"
        ) from exc
    except BaseException:
        _discard(temp)
        raise
    finally:
        resp.close()
    return DownloadedVideo(str(destination), written, digest.hexdigest(), content_type)


def _check_headers(resp: requests.Response, max_bytes: int | None) -> tuple[str, int | None]:
    content_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not content_type.startswith(ALLOWED_CONTENT_TYPES):
        raise VideoDownloadError(
            f"Video URL served Content-Type {content_type or 'none'!r}, expected video/*"
        )
    declared = resp.headers.get("Content-Length")
    expected = int(declared) if declared and declared.isdigit() else None
    if max_bytes is not None and expected is not None and expected > max_bytes:
        raise VideoDownloadError(f"Video is {expected} bytes, over max_bytes={max_bytes}")
    return content_type, expected


def _discard(path: Any) -> None:
    with contextlib.suppress(OSError, NotImplementedError):  # best effort: the real error matters more
        path.unlink(missing_ok=True)
