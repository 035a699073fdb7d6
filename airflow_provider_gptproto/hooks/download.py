"""Deprecated: the video download's former home, kept importable for one release.

Storage writes moved to :mod:`airflow_provider_gptproto.storage` (``sweep_stale_parts``,
``write_bytes_atomically``, ``existing_video``, ``DownloadedVideo``); the HTTP half is the hook's
(``GPTProtoHook.download_video``). Importing this module warns.
"""

from __future__ import annotations

import warnings

from airflow_provider_gptproto.hooks._video_http import (
    ALLOWED_CONTENT_TYPES,
    MAX_REDIRECTS,
    check_video_url,
    content_length,
    open_stream,
    write_atomically,
)
from airflow_provider_gptproto.storage import (
    READ_BYTES,
    STALE_PART_SECONDS,
    WRITE_BYTES,
    DownloadedVideo,
    existing_video,
    sweep_stale_parts,
    write_bytes_atomically,
)
from airflow_provider_gptproto.storage.digest import HASH_QUEUE_CHUNKS

warnings.warn(
    "airflow_provider_gptproto.hooks.download is deprecated and will be removed in the next release: "
    "import sweep_stale_parts, write_bytes_atomically, existing_video and DownloadedVideo from "
    "airflow_provider_gptproto.storage, and download with GPTProtoHook.download_video",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "ALLOWED_CONTENT_TYPES",
    "HASH_QUEUE_CHUNKS",
    "MAX_REDIRECTS",
    "READ_BYTES",
    "STALE_PART_SECONDS",
    "WRITE_BYTES",
    "DownloadedVideo",
    "check_video_url",
    "content_length",
    "existing_video",
    "open_stream",
    "sweep_stale_parts",
    "write_atomically",
    "write_bytes_atomically",
]
