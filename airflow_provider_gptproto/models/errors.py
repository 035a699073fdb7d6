"""Turn any documented HTTP error reply (four JSON shapes, HTML or empty bodies from proxies) into the
matching :mod:`exceptions` class; content-policy rejections (400 or 503) get their own, never retried.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from airflow_provider_gptproto.exceptions import (
    GPTProtoAPIError,
    GPTProtoAuthError,
    GPTProtoBadRequestError,
    GPTProtoContentPolicyError,
    GPTProtoNotFoundError,
    GPTProtoRateLimitError,
    GPTProtoServerError,
)

_POLICY_MARKERS = ("sensitivecontent", "policyviolation", "content policy", "content_policy", "nsfw")
MAX_MESSAGE_CHARS = 300


def looks_like_content_policy(*texts: str | None) -> bool:
    """True when an error code or message says moderation rejected the prompt or the output."""
    haystack = " ".join(t for t in texts if t).lower()
    return any(marker in haystack for marker in _POLICY_MARKERS)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def error_from_response(
    status: int, body: str | bytes | None, retry_after: str | None = None
) -> GPTProtoAPIError:
    """Build the exception for a non-2xx reply; never raises itself."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    code, error_type, message = _fields(text)
    if not message:
        message = _describe_body(text, status)
    message = message[:MAX_MESSAGE_CHARS]
    kwargs: dict[str, Any] = {"http_status": status, "code": code, "error_type": error_type}
    if looks_like_content_policy(code, message):
        return GPTProtoContentPolicyError(message, **kwargs)
    if status == 429:
        return GPTProtoRateLimitError(message, retry_after=parse_retry_after(retry_after), **kwargs)
    if status in (401, 403):
        return GPTProtoAuthError(message, **kwargs)
    if status == 404:
        return GPTProtoNotFoundError(message, **kwargs)
    if status >= 500:
        return GPTProtoServerError(message, retry_after=parse_retry_after(retry_after), **kwargs)
    if status == 400 or status == 422:
        return GPTProtoBadRequestError(message, **kwargs)
    return GPTProtoAPIError(message, **kwargs)


def _fields(text: str) -> tuple[str | None, str | None, str | None]:
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        return None, None, None
    if not isinstance(data, Mapping):
        return None, None, None
    err = data.get("error", data)
    if isinstance(err, str):
        return None, None, err or None
    if not isinstance(err, Mapping):
        return None, None, None

    def text_of(key: str) -> str | None:
        value = err.get(key)
        return str(value) if value not in (None, "") and not isinstance(value, (Mapping, list)) else None

    return text_of("code"), text_of("type"), text_of("message") or text_of("msg")


def _describe_body(text: str, status: int) -> str:
    stripped = text.strip()
    if not stripped:
        return f"empty reply body (HTTP {status})"
    if stripped.startswith("<"):
        return f"non-JSON (HTML) error page from the server or a proxy (HTTP {status})"
    return f"unparseable error body: {stripped[:120]!r}"
