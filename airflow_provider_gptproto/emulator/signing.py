"""Pre-signed media links, like the object-store URLs the real service hands out.

A link carries its expiry and an HMAC over (task id, file kind, expiry), so it needs no
auth header, cannot be forged for another task, and stops working after the TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from typing import Literal

MediaKind = Literal["mp4", "png"]
MEDIA_PREFIX = "/_emulator/videos"


def _signature(secret: str, task_id: str, kind: str, expires: int) -> str:
    message = f"{task_id}.{kind}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_url(base_url: str, secret: str, task_id: str, kind: MediaKind, expires_at: float) -> str:
    """Absolute link to a task's video or last frame, valid until ``expires_at`` (unix seconds)."""
    expires = math.ceil(expires_at)
    sig = _signature(secret, task_id, kind, expires)
    return f"{base_url.rstrip('/')}{MEDIA_PREFIX}/{task_id}.{kind}?expires={expires}&sig={sig}"


def check_signature(secret: str, task_id: str, kind: str, expires: str | None, sig: str | None) -> str | None:
    """None when the link is valid, else the reason ("signature" or "expired")."""
    if not expires or not sig or not expires.isdigit():
        return "signature"
    if not hmac.compare_digest(_signature(secret, task_id, kind, int(expires)), sig):
        return "signature"
    return "expired" if int(expires) < time.time() else None
