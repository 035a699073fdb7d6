"""Storage writes: atomic files in any ObjectStoragePath, and the sweep of killed writes' leftovers.

Below the hooks: this package does file I/O only (no HTTP, no Airflow task objects), so the hook,
the operators and the poster writer all build on it.
"""

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
