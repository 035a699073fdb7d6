"""Write files into any ObjectStoragePath whole or not at all, and clear what killed writes left.

The destination only ever holds a whole, verified file: bytes go to a hidden temporary sibling
(``.<name>.<hex>.part``) renamed over the destination at the end. Memory stays flat whatever the
size (fixed-size chunks). Nothing here speaks HTTP: the hook opens the stream and hands over chunks.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timezone
from typing import TYPE_CHECKING

from airflow_provider_gptproto.exceptions import (
    GPTProtoVideoDestinationExistsError,
    GPTProtoVideoDownloadError,
)
from airflow_provider_gptproto.storage.digest import BackgroundSha256

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

# Read 1 MiB at a time (fewer trips through requests/urllib3 per byte) but write at most 32 KiB per
# call (curl writes 16 KiB): on the benchmark VM, write() calls of 128 KiB and more into the page
# cache now and then cost 3-5x as much per byte, and right after another download even 64 KiB did.
READ_BYTES = 1024 * 1024
WRITE_BYTES = 32 * 1024
# A temporary file idle this long belongs to a killed write (a live download writes within the 60 s
# read timeout); the next write of the same destination removes it.
STALE_PART_SECONDS = 180.0
# What the writers name their temporary files: ".<destination name>.<hex>.part".
_PART_NAME = re.compile(r"^\..+\.[0-9a-f]+\.part$")


@dataclass(frozen=True)
class DownloadedVideo:
    """A video stored at ``uri``: its size, sha256 and content type."""

    uri: str
    bytes: int
    sha256: str
    content_type: str


def existing_video(destination: ObjectStoragePath, if_exists: str) -> DownloadedVideo | None:
    """What ``if_exists`` makes of a file already at ``destination``: None means write it.

    :param destination: the file the caller is about to write.
    :param if_exists: ``"overwrite"``, ``"skip"`` or ``"fail"`` (checked by the caller).
    :return: the existing file's description, or None when the caller should write.
    :raises GPTProtoVideoDestinationExistsError: the file exists and ``if_exists="fail"``.
    :raises GPTProtoVideoDownloadError: the destination cannot be checked or read.
    """
    if if_exists == "overwrite" or not _exists(destination):
        return None
    if if_exists == "fail":
        raise GPTProtoVideoDestinationExistsError(
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
        raise GPTProtoVideoDownloadError(
            f"Cannot read the existing video at {destination}: {_reason(exc)}"
        ) from exc
    return DownloadedVideo(str(destination), size, digest.hexdigest(), "video/mp4")


def _exists(destination: ObjectStoragePath) -> bool:
    try:
        return bool(destination.exists())
    except OSError as exc:
        raise GPTProtoVideoDownloadError(
            f"Cannot check the destination {destination}: {_reason(exc)}"
        ) from exc


def write_stream_atomically(
    chunks: Iterable[bytes],
    destination: ObjectStoragePath,
    *,
    content_type: str,
    expected: int | None = None,
    expected_sha256: str | None = None,
    max_bytes: int | None = None,
    sweep: bool = True,
    stream_errors: tuple[type[BaseException], ...] = (),
) -> DownloadedVideo:
    """Write ``chunks`` into ``destination`` via a temporary sibling, hashing them on the way; errors
    name ``destination`` (the path the user chose), never the temporary file.

    :param chunks: the file's bytes, in order (e.g. a response's ``iter_content``).
    :param destination: the file to write; its folder must exist.
    :param content_type: recorded in the result.
    :param expected: the announced size; fewer or more bytes fail as truncated. Default None: unknown.
    :param expected_sha256: the bytes' known sha256; other bytes fail and are not kept. Default None.
    :param max_bytes: fail once more bytes than this arrived. Default None: no limit.
    :param sweep: first remove a killed write's leftovers of this destination (lists its folder).
        Default True; False after :func:`sweep_stale_parts` on the folder.
    :param stream_errors: exception types ``chunks`` raises when its source broke off (e.g.
        ``requests.RequestException``): reported as a truncated video. Default: none.
    :return: ``DownloadedVideo(uri, bytes, sha256, content_type)``.
    :raises GPTProtoVideoDownloadError: over ``max_bytes``, truncated, another sha256, or the write
        failed; nothing is left at the destination.
    """
    if sweep:
        _remove_stale(destination.parent.glob(f".{glob.escape(destination.name)}.*.part"))
    temp = _temp_sibling(destination)
    written = 0
    try:
        # Not temp.open(): its wrapper records a lineage asset on every write() call (7 us each, 0.2 s
        # of CPU per GiB at 32 KiB writes, a sixth of the download's) and for the temporary name.
        with BackgroundSha256() as digest, temp.fs.open(temp.path, mode="wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if max_bytes is not None and written > max_bytes:
                    raise GPTProtoVideoDownloadError(f"Video exceeds max_bytes={max_bytes}; download aborted")
                digest.update(chunk)
                view = memoryview(chunk)
                for offset in range(0, len(view), WRITE_BYTES):
                    out.write(view[offset : offset + WRITE_BYTES])
        if expected is not None and written != expected:
            raise GPTProtoVideoDownloadError(f"Video truncated: got {written} of {expected} bytes")
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise GPTProtoVideoDownloadError(
                f"Video has sha256 {digest.hexdigest()}, expected {expected_sha256}"
            )
        temp.rename(destination)
    except stream_errors as exc:
        _discard(temp)
        raise GPTProtoVideoDownloadError(
            f"Video truncated: the stream broke after {written} complete bytes ({type(exc).__name__})"
        ) from exc
    except OSError as exc:
        _discard(temp)
        raise GPTProtoVideoDownloadError(f"Cannot write the video to {destination}: {_reason(exc)}") from exc
    except BaseException:
        _discard(temp)
        raise
    return DownloadedVideo(str(destination), written, digest.hexdigest(), content_type)


def write_bytes_atomically(data: bytes, destination: ObjectStoragePath) -> None:
    """Write a small file (a poster frame) whole or not at all: a temporary sibling, then a rename
    (a killed write leaves only a temporary file, which :func:`sweep_stale_parts` clears).

    :param data: the file's bytes.
    :param destination: the file to write; its folder must exist.
    :raises OSError: the write or the rename failed (nothing is left at the destination).
    """
    temp = _temp_sibling(destination)
    try:
        with temp.fs.open(temp.path, mode="wb") as out:  # not temp.open(): no lineage for the temp name
            out.write(data)
        temp.rename(destination)
    except BaseException:
        _discard(temp)
        raise


def sweep_stale_parts(folder: ObjectStoragePath) -> None:
    """Remove the temporary files that killed writes left anywhere in ``folder``: one listing.

    For a caller writing many videos into one folder (the batch, once per worker phase): sweeping
    per video would list the folder per video, which grows with the square of the batch.

    :param folder: the folder to sweep; only files idle for :data:`STALE_PART_SECONDS` go.
    """
    _remove_stale(p for p in folder.glob(".*.part") if _PART_NAME.match(p.name))


def _temp_sibling(destination: ObjectStoragePath) -> ObjectStoragePath:
    """A hidden, unique name next to ``destination`` that :data:`_PART_NAME` matches."""
    return destination.parent / f".{destination.name}.{uuid.uuid4().hex}.part"


def _remove_stale(parts: Iterable[ObjectStoragePath]) -> None:
    """Remove those of ``parts`` idle for longer than :data:`STALE_PART_SECONDS`.

    A write killed outright (SIGKILL, a lost worker) cannot remove its ``.part`` file. A live one
    writes at least once per read timeout or fails and removes its own, so one idle for longer than
    that is such a leftover; a concurrent live write's file is left alone.
    """
    cutoff = time.time() - STALE_PART_SECONDS
    with contextlib.suppress(OSError, NotImplementedError, ValueError):  # best effort: never fails a write
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
