"""Check a download destination before anything is paid for: its filesystem, its connection
(at parse time on a static destination or a templated one's static part, and once rendered).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from airflow_provider_gptproto.exceptions import GPTProtoRequestError

LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
IF_EXISTS = ("overwrite", "skip", "fail")
# What to pip install for the object stores Airflow's own providers serve (fsspec names the library).
PROVIDER_PACKAGES = {
    **dict.fromkeys(("s3", "s3a"), '"apache-airflow-providers-amazon[s3fs]"'),
    **dict.fromkeys(("gs", "gcs"), "apache-airflow-providers-google gcsfs"),
    **dict.fromkeys(("abfs", "abfss", "az", "adl"), "apache-airflow-providers-microsoft-azure adlfs"),
}
TEMPLATE_MARKERS = ("{{", "{%", "{#")


def static_prefix(value: str) -> str:
    """The part of a (possibly templated) string before its first Jinja marker."""
    cut = min((i for i in (value.find(m) for m in TEMPLATE_MARKERS) if i >= 0), default=len(value))
    return value[:cut]


def split_destination(value: str) -> tuple[str | None, str | None]:
    """``(protocol, conn_id)`` of a destination URL as far as ``value`` spells them, else None.

    ``/data/videos`` -> ``("", None)``; ``s3://aws_default@bucket/k`` -> ``("s3", "aws_default")``;
    ``s3://bucket/k`` -> ``("s3", None)``; a prefix cut before the ``://`` -> ``(None, None)``.
    """
    if "://" not in value:
        return ("", None) if value.startswith("/") or (value and ":" not in value) else (None, None)
    protocol, rest = value.split("://", 1)
    authority = rest.split("/", 1)[0]
    if "@" not in authority:
        return protocol.lower(), None
    conn_id = authority.rsplit("@", 1)[0]
    return protocol.lower(), conn_id or None


def check_destination(value: Any, *, templated: bool, check_connection: bool = True) -> None:
    """Raise :class:`GPTProtoRequestError` (field ``destination``) for a destination that cannot work.

    :param value: the destination; anything but a string (an XComArg) is checked once rendered.
    :param templated: ``value`` may still hold Jinja; only its static prefix is checked.
    :param check_connection: also look up a storage connection named in the URL.
    """
    if not isinstance(value, str):
        return
    if not value.strip() and not templated:
        raise GPTProtoRequestError(
            "destination must be a path or URL, got an empty string", field="destination"
        )
    spelled = static_prefix(value) if templated else value
    protocol, conn_id = split_destination(spelled)
    if protocol is None or protocol in LOCAL_PROTOCOLS:
        return
    _check_filesystem(protocol, value)
    # A conn id cut short by a template ("s3://{{ var }}@...") only shows once rendered.
    if conn_id and check_connection and (not templated or "@" in spelled.split("://", 1)[1]):
        _check_connection(conn_id, value)


def filesystem_registered(protocol: str) -> bool:
    """Whether an Airflow provider registered an ObjectStoragePath filesystem for ``protocol``."""
    try:
        from airflow.sdk.io.fs import has_fs
    except ImportError:  # Airflow 3.0 keeps the filesystem registry in core
        from airflow.io import has_fs  # type: ignore[no-redef,attr-defined,unused-ignore]
    return bool(has_fs(protocol))


def _check_filesystem(protocol: str, destination: str) -> None:
    install = PROVIDER_PACKAGES.get(protocol)
    try:
        registered = filesystem_registered(protocol)
    except ImportError as exc:  # a provider's filesystem module failed to import
        registered, cause = False, f" ({exc})"
    else:
        cause = ""
    if not registered:
        hint = (
            f"pip install {install}"
            if install
            else f"install the Airflow provider that registers the {protocol!r} filesystem"
        )
        raise GPTProtoRequestError(
            f"destination {destination!r}: no Airflow filesystem is registered for {protocol}://"
            f"{cause}. To write there, {hint}; or download to a local path.",
            field="destination",
        )
    library = _fsspec_library(protocol)
    if library and importlib.util.find_spec(library) is None:
        hint = f"pip install {install}" if install else f"pip install {library}"
        raise GPTProtoRequestError(
            f"destination {destination!r}: {protocol}:// needs the Python package {library!r}, which is "
            f"not installed. {hint}",
            field="destination",
        )


def _fsspec_library(protocol: str) -> str | None:
    """The top-level module fsspec loads for ``protocol`` (``s3fs`` for s3), if not fsspec's own."""
    from fsspec.registry import known_implementations

    spec = known_implementations.get(protocol) or {}
    module = str(spec.get("class", "")).split(".", 1)[0]
    return module if module and module != "fsspec" else None


def _not_found_errors() -> tuple[type[BaseException], ...]:
    """The missing-connection exception(s): Airflow 3.1 has two classes of that name."""
    import airflow.exceptions
    import airflow.sdk.exceptions

    return tuple(
        {
            getattr(module, "AirflowNotFoundException", airflow.exceptions.AirflowNotFoundException)
            for module in (airflow.exceptions, airflow.sdk.exceptions)
        }
    )


def _check_connection(conn_id: str, destination: str) -> None:
    from airflow.providers.common.compat.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except _not_found_errors():
        raise GPTProtoRequestError(
            f"destination {destination!r} names the storage connection {conn_id!r}, which does not exist. "
            f"Add it (airflow connections add {conn_id} ...), or name an existing one in the URL "
            "(<protocol>://<conn_id>@<bucket>/...).",
            field="destination",
        ) from None


def same_location(a: Any, b: Any) -> bool:
    """Whether two ObjectStoragePaths name one file (``/x/m.jsonl`` and ``file:///x/m.jsonl`` do).

    The storage connection is left out: two connections to one bucket still name one file.
    """
    protocols = [p.protocol if p.protocol not in LOCAL_PROTOCOLS else "file" for p in (a, b)]
    if protocols[0] != protocols[1]:
        return False
    if protocols[0] == "file":
        return os.path.realpath(a.path) == os.path.realpath(b.path)
    return str(a.path).rstrip("/") == str(b.path).rstrip("/")


def check_if_exists(value: Any) -> str:
    if value not in IF_EXISTS:
        raise GPTProtoRequestError(
            f"if_exists must be one of {', '.join(repr(v) for v in IF_EXISTS)}, got {value!r}",
            field="if_exists",
        )
    return str(value)


def is_static(params: dict[str, Any]) -> bool:
    """True when no value is a template or a reference resolved at run time (XComArg, mapped arg)."""

    def plain(value: Any) -> bool:
        if isinstance(value, str):
            return "{{" not in value and "{%" not in value
        if isinstance(value, (int, float, bool, type(None))):
            return True
        if isinstance(value, dict):
            return all(plain(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        return False

    return all(plain(v) for v in params.values())
