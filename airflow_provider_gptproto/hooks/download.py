"""Stream a video from its pre-signed URL into any ObjectStoragePath, atomically.

Memory stays flat whatever the size (fixed-size chunks), the destination only ever holds a whole,
verified file (we write a hidden temporary sibling and rename it at the end), and the API key is
never sent: video hosts are third parties and pre-signed URLs need no credentials.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import queue
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timezone
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import requests
from airflow.providers.common.compat.sdk import get_hook_lineage_collector

from airflow_provider_gptproto.exceptions import (
    VideoDestinationExistsError,
    VideoDownloadError,
    VideoURLExpiredError,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

# Read 1 MiB at a time (fewer trips through requests/urllib3 per byte) but write at most 32 KiB per
# call (curl writes 16 KiB): on the benchmark VM, write() calls of 128 KiB and more into the page
# cache now and then cost 3-5x as much per byte, and right after another download even 64 KiB did.
READ_BYTES = 1024 * 1024
WRITE_BYTES = 32 * 1024
# Chunks waiting for the digest thread: memory stays at a few READ_BYTES whatever the video's size.
HASH_QUEUE_CHUNKS = 4
MAX_REDIRECTS = 5
# A temporary file idle this long belongs to a killed download (a live one writes within the 60 s
# read timeout); the next download of the same destination removes it.
STALE_PART_SECONDS = 180.0
ALLOWED_CONTENT_TYPES = ("video/", "application/octet-stream", "binary/octet-stream")
# What write_atomically names its temporary files: ".<destination name>.<hex>.part".
_PART_NAME = re.compile(r"^\..+\.[0-9a-f]+\.part$")


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


def existing_video(destination: ObjectStoragePath, if_exists: str) -> DownloadedVideo | None:
    """What ``if_exists`` makes of a file already at ``destination``: None means download.

    ``"overwrite"`` downloads without looking (the atomic rename replaces the file, so a retry
    repeats cleanly); ``"fail"`` raises; ``"skip"`` keeps the file and describes it (size, sha256).
    """
    if if_exists == "overwrite" or not _exists(destination):
        return None
    if if_exists == "fail":
        raise VideoDestinationExistsError(
            f"Destination {destination} already exists and if_exists='fail': not downloading. Remove it, "
            "or use if_exists='overwrite' (replace it) or 'skip' (keep it)."
        )
    digest, size = hashlib.sha256(), 0
    try:
        with destination.fs.open(destination.path, mode="rb") as handle:
            while chunk := handle.read(READ_BYTES):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise VideoDownloadError(f"Cannot read the existing video at {destination}: {_reason(exc)}") from exc
    return DownloadedVideo(str(destination), size, digest.hexdigest(), "video/mp4")


def _exists(destination: ObjectStoragePath) -> bool:
    try:
        return bool(destination.exists())
    except OSError as exc:
        raise VideoDownloadError(f"Cannot check the destination {destination}: {_reason(exc)}") from exc


def write_atomically(
    resp: requests.Response, destination: ObjectStoragePath, max_bytes: int | None, *, sweep: bool = True
) -> DownloadedVideo:
    """Stream ``resp`` into ``destination`` (an ObjectStoragePath) via a temporary sibling.

    An error writing the hidden temporary file is reported against ``destination``: that is the
    path the user chose and can fix; the temporary name means nothing to them. ``sweep=False``
    skips looking for a killed download's leftovers of this destination (which lists its folder),
    for a caller that runs :func:`sweep_stale_parts` on the whole folder instead.
    """
    if sweep:
        _remove_stale(destination.parent.glob(f".{glob.escape(destination.name)}.*.part"))
    temp = _temp_sibling(destination)
    written = 0
    try:
        content_type, expected = _check_headers(resp, max_bytes)
        # Not temp.open(): its wrapper records a lineage asset on every write() call (7 us each, 0.2 s
        # of CPU per GiB at 32 KiB writes, a sixth of the download's) and for the temporary name.
        # The destination is recorded once, below.
        with _BackgroundSha256() as digest, temp.fs.open(temp.path, mode="wb") as out:
            for chunk in resp.iter_content(READ_BYTES):
                written += len(chunk)
                if max_bytes is not None and written > max_bytes:
                    raise VideoDownloadError(f"Video exceeds max_bytes={max_bytes}; download aborted")
                digest.update(chunk)
                view = memoryview(chunk)
                for offset in range(0, len(view), WRITE_BYTES):
                    out.write(view[offset : offset + WRITE_BYTES])
        if expected is not None and written != expected:
            raise VideoDownloadError(f"Video truncated: got {written} of {expected} bytes")
        temp.rename(destination)
        get_hook_lineage_collector().add_output_asset(context=destination, uri=str(destination))
    except requests.RequestException as exc:
        _discard(temp)
        raise VideoDownloadError(
            f"Video truncated: the stream broke after {written} complete bytes ({type(exc).__name__})"
        ) from exc
    except OSError as exc:
        _discard(temp)
        raise VideoDownloadError(f"Cannot write the video to {destination}: {_reason(exc)}") from exc
    except BaseException:
        _discard(temp)
        raise
    finally:
        resp.close()
    return DownloadedVideo(str(destination), written, digest.hexdigest(), content_type)


def write_bytes_atomically(data: bytes, destination: ObjectStoragePath) -> None:
    """Write a small file (a poster frame) whole or not at all: a temporary sibling, then a rename.

    A reader never sees half a file, and a write killed midway leaves only a temporary file that
    :func:`sweep_stale_parts` clears later. Raises :class:`OSError` when the write fails.
    """
    temp = _temp_sibling(destination)
    try:
        with temp.fs.open(temp.path, mode="wb") as out:  # not temp.open(): no lineage for the temp name
            out.write(data)
        temp.rename(destination)
    except BaseException:
        _discard(temp)
        raise


def _temp_sibling(destination: ObjectStoragePath) -> ObjectStoragePath:
    """A hidden, unique name next to ``destination`` that :data:`_PART_NAME` matches."""
    return destination.parent / f".{destination.name}.{uuid.uuid4().hex}.part"


class _BackgroundSha256:
    """sha256 of the chunks passed to ``update``, computed in order on a helper thread.

    Why a thread: sha256 costs nearly as much CPU per byte as curl's whole download, so one thread
    that receives, hashes and writes reaches only ~0.6x ``curl -o``. hashlib releases the GIL while it
    hashes a big buffer, so the digest of one chunk overlaps the receive and write of the next on
    another core. Chunks are immutable ``bytes`` (safe to share); the bounded queue keeps memory flat.
    Leaving the ``with`` block, normally or not, always stops and joins the thread.
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=HASH_QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._abandoned = False  # the download failed: chunks still queued are dropped, not hashed
        self._thread = threading.Thread(target=self._run, name="gptproto-video-sha256", daemon=True)

    def __enter__(self) -> _BackgroundSha256:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._abandoned = exc_type is not None
        self._chunks.put(None)  # never blocks for long: the thread always drains the queue
        self._thread.join()
        if self._error is not None and exc_type is None:
            raise self._error

    def update(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._chunks.put(chunk)

    def hexdigest(self) -> str:
        if self._thread.is_alive():
            raise RuntimeError("the digest is only known once the with block has ended")
        return self._digest.hexdigest()

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self._error is not None or self._abandoned:
                continue
            try:
                self._digest.update(chunk)
            except BaseException as exc:  # e.g. MemoryError: handed to the download; the queue still drains
                self._error = exc


def content_length(value: str | None) -> int | None:
    """A Content-Length header as a byte count; None when absent or not a plain number."""
    return int(value) if value and value.isdigit() else None


def _check_headers(resp: requests.Response, max_bytes: int | None) -> tuple[str, int | None]:
    content_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not content_type.startswith(ALLOWED_CONTENT_TYPES):
        raise VideoDownloadError(
            f"Video URL served Content-Type {content_type or 'none'!r}, expected video/*"
        )
    expected = content_length(resp.headers.get("Content-Length"))
    if max_bytes is not None and expected is not None and expected > max_bytes:
        raise VideoDownloadError(f"Video is {expected} bytes, over max_bytes={max_bytes}")
    return content_type, expected


def sweep_stale_parts(folder: ObjectStoragePath) -> None:
    """Remove the temporary files that killed downloads left anywhere in ``folder``: one listing.

    For a caller writing many videos into one folder (the batch operator, once per worker phase):
    sweeping per video would list the whole folder for every video, which grows with the square of
    the batch (and is one paged LIST request per video on object stores).
    """
    _remove_stale(p for p in folder.glob(".*.part") if _PART_NAME.match(p.name))


def _remove_stale(parts: Iterable[ObjectStoragePath]) -> None:
    """Remove those of ``parts`` idle for longer than :data:`STALE_PART_SECONDS`.

    A download killed outright (SIGKILL, a lost worker) cannot remove its ``.part`` file. A live one
    writes at least once per read timeout or fails and removes its own, so one idle for longer than
    that is such a leftover; a concurrent live download's file is left alone.
    """
    cutoff = time.time() - STALE_PART_SECONDS
    with contextlib.suppress(OSError, NotImplementedError, ValueError):  # best effort: never fails a download
        for part in parts:
            modified = part.fs.modified(part.path)
            stamp = (
                modified.timestamp() if modified.tzinfo else modified.replace(tzinfo=timezone.utc).timestamp()
            )
            if stamp < cutoff:
                _discard(part)


def _reason(exc: OSError) -> str:
    """An OSError without its file name (which may be the temporary file's)."""
    return exc.strerror or type(exc).__name__


def _discard(path: ObjectStoragePath) -> None:
    with contextlib.suppress(OSError, NotImplementedError):  # best effort: the real error matters more
        path.unlink(missing_ok=True)
