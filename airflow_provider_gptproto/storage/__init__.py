"""Storage writes (file I/O only, below the hooks): atomic files in any ObjectStoragePath, and the
sweep of killed writes' leftovers."""

from __future__ import annotations

from airflow_provider_gptproto.storage.atomic import (
    READ_BYTES,
    STALE_PART_SECONDS,
    WRITE_BYTES,
    DownloadedVideo,
    existing_video,
    sweep_stale_parts,
    write_bytes_atomically,
    write_stream_atomically,
)

__all__ = [
    "READ_BYTES",
    "STALE_PART_SECONDS",
    "WRITE_BYTES",
    "DownloadedVideo",
    "existing_video",
    "sweep_stale_parts",
    "write_bytes_atomically",
    "write_stream_atomically",
]
