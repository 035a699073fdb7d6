"""Read an Airflow connection into the few settings the client needs, and nothing else.

Unlike HttpHook, no connection extra ever becomes an HTTP header: the API needs exactly
``Authorization``, ``Content-Type``/``Accept`` and a User-Agent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_gptproto import __version__
from airflow_provider_gptproto.exceptions import GPTProtoAuthError, GPTProtoRequestError
from airflow_provider_gptproto.get_provider_info import (
    DEFAULT_MAX_BYTES,
    DEFAULT_RETRY_LIMIT,
    DEFAULT_TIMEOUT_SECONDS,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection

DEFAULT_BASE_URL = "https://gptproto.com"
TASKS_PATH = "/api/v3/contents/generations/tasks"
USER_AGENT = f"airflow-provider-gptproto/{__version__}"


@dataclass(frozen=True)
class ClientSettings:
    """Everything a request needs; the key is excluded from repr so it never lands in a log."""

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    retry_limit: int = DEFAULT_RETRY_LIMIT
    max_bytes: int = DEFAULT_MAX_BYTES
    allow_private_urls: bool = False

    @property
    def tasks_url(self) -> str:
        return self.base_url + TASKS_PATH

    def headers(self, *, with_body: bool = False) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if with_body:
            headers["Content-Type"] = "application/json"
        return headers

    def redact(self, text: str) -> str:
        """Remove the key from text that came from the server (some servers echo what they got)."""
        return text.replace(self.api_key, "***") if self.api_key else text


def settings_from_connection(
    conn: Connection, extra: dict[str, Any], *, timeout: float | None = None, retry_limit: int | None = None
) -> ClientSettings:
    """Map host/password/extra of a ``gptproto`` connection; hook arguments override extras."""
    api_key = (conn.password or "").strip()
    if not api_key:
        raise GPTProtoAuthError(
            f"Connection {conn.conn_id!r} has no API key: put the GPTProto key in the Password field"
        )
    return ClientSettings(
        base_url=base_url_of(conn),
        api_key=api_key,
        timeout=_number(extra, "timeout", float, DEFAULT_TIMEOUT_SECONDS, given=timeout),
        retry_limit=_number(extra, "retry_limit", int, DEFAULT_RETRY_LIMIT, given=retry_limit),
        max_bytes=_number(extra, "max_bytes", int, DEFAULT_MAX_BYTES),
        allow_private_urls=_flag(_extra(extra, "allow_private_urls"), "allow_private_urls"),
    )


def base_url_of(conn: Connection) -> str:
    """Host may be a full URL or a bare host name; schema (URI form only) picks http for local use."""
    host = (conn.host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        host = f"{conn.schema or 'https'}://{host}"
    if conn.port and host.count(":") < 2:
        host = f"{host}:{conn.port}"
    if not host.startswith(("http://", "https://")):
        raise GPTProtoRequestError(f"Connection host must be an http(s) URL, got {host[:60]!r}", field="host")
    return host


def _extra(extra: dict[str, Any], name: str) -> Any:
    # Older UIs stored custom fields as extra__<conn_type>__<name>.
    return extra.get(name, extra.get(f"extra__gptproto__{name}"))


def _flag(value: Any, name: str) -> bool:
    if value in (None, "", True, False) or str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise GPTProtoRequestError(f"Connection extra {name!r} must be true or false, got {value!r}", field=name)


def _number(extra: dict[str, Any], name: str, kind: type, default: float, *, given: Any = None) -> Any:
    """``given`` (a hook argument) or the extra ``name``, as ``kind``; ``default`` when neither is set."""
    value = given if given is not None else _extra(extra, name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        number = None if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = None
    # Reject true/false, nan/inf, values below 1 and (for counts) fractions instead of guessing.
    if number is None or not math.isfinite(number) or number < 1 or (kind is int and not number.is_integer()):
        what = "a whole number" if kind is int else "a number"
        raise GPTProtoRequestError(
            f"Connection extra {name!r} must be {what} >= 1, got {value!r}", field=name
        )
    return kind(number)
