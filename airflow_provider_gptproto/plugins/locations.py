"""Where a recorded location may be read from: local files only, inside ``[gptproto] ui_media_roots``."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

from airflow.configuration import conf


def media_roots() -> list[str]:
    """``[gptproto] ui_media_roots``: comma-separated folders; empty means wherever tasks stored videos."""
    raw = conf.get("gptproto", "ui_media_roots", fallback="") or ""
    return [os.path.realpath(part.strip()) for part in raw.split(",") if part.strip()]


def local_path(uri: str | None) -> str | None:
    """The local file a recorded ``uri`` names (plain path or ``file://``), or None for other stores."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file", "local") and (parsed.scheme == "" or parsed.netloc in ("", "localhost")):
        return unquote(parsed.path) if parsed.scheme else uri
    return None


def inside_media_roots(real_path: str) -> bool:
    """Whether a resolved path lies in one of ``ui_media_roots`` (always, when none are set)."""
    roots = media_roots()
    return not roots or any(os.path.commonpath([real_path, root]) == root for root in roots)
