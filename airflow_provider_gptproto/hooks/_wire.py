"""The wire format's small rules, shared by the sync and async paths of GPTProtoHook."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from airflow_provider_gptproto.exceptions import GPTProtoRequestError, GPTProtoResponseError
from airflow_provider_gptproto.hooks._settings import ClientSettings
from airflow_provider_gptproto.models import TaskStatus, error_from_response

# The list filter's status words: each status's own, but "queued" for pending.
LIST_FILTER_STATUS = {**{status: status.value for status in TaskStatus}, TaskStatus.PENDING: "queued"}


def decode_reply(settings: ClientSettings, status: int, retry_after: str | None, body: bytes) -> Any:
    """Raise the matching error for a non-2xx reply, else return the parsed JSON (``{}`` when empty)."""
    body = body.replace(settings.api_key.encode(), b"***")  # some servers echo the key (even in codes)
    if status >= 400:
        error = error_from_response(status, body, retry_after)
        error.message = settings.redact(error.message)
        error.args = (error.describe(),)
        raise error
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except ValueError:
        snippet = settings.redact(body[:80].decode("utf-8", "replace"))
        raise GPTProtoResponseError(f"GPTProto reply (HTTP {status}) is not JSON: {snippet!r}") from None


def list_params(
    status: TaskStatus | str | None,
    task_ids: Iterable[str] | None,
    model: str | None,
    page_num: int,
    page_size: int,
) -> list[tuple[str, str]]:
    """Query parameters for the list call, validated before anything is sent."""
    for name, value in (("page_num", page_num), ("page_size", page_size)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 500:
            raise GPTProtoRequestError(f"{name} must be an integer from 1 to 500, got {value!r}", field=name)
    params = [("page_num", str(page_num)), ("page_size", str(page_size))]
    if status is not None:
        try:
            parsed = TaskStatus.parse(status)
        except GPTProtoResponseError as exc:  # a caller's value, not a server reply
            message = str(exc).replace("task status", "status filter")
            raise GPTProtoRequestError(message, field="status") from None
        params.append(("filter.status", LIST_FILTER_STATUS[parsed]))
    if isinstance(task_ids, str):  # one id, not an iterable of characters
        task_ids = [task_ids]
    params.extend(("filter.task_ids", checked_id(t)) for t in task_ids or ())
    if model:
        params.append(("filter.model", model))
    return params


def checked_id(task_id: str) -> str:
    if not isinstance(task_id, str) or not task_id.strip():
        raise GPTProtoRequestError(f"task_id must be a non-empty string, got {task_id!r}", field="task_id")
    return task_id


def task_path(task_id: str) -> str:
    return "/" + quote(checked_id(task_id), safe="")


def never_connected(exc: BaseException) -> bool:
    """True when requests failed before a TCP connection existed (so nothing was sent)."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen or item is None:
            continue
        seen.add(id(item))
        if isinstance(item, (NewConnectionError, ConnectTimeoutError, ConnectionRefusedError)):
            return True
        if isinstance(item, BaseException):
            todo.extend([*item.args, item.__cause__, item.__context__, getattr(item, "reason", None)])
    return False


def short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
