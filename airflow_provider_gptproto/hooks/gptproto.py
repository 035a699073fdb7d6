"""GPTProtoHook: every byte this provider exchanges with the GPTProto API goes through here.

Sync calls use one pooled ``requests.Session`` per hook; async calls use one aiohttp session per
event loop shared by all hooks (see ``_aiosession``). Both share the pure core for building requests
and reading replies, and one retry policy (``_retry``). We do not subclass HttpHook because it builds
a new Session per call and turns every connection extra into an HTTP header; we keep its connection
conventions (host = base URL, password = key) and its provider's dependency for users' other tasks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from airflow.providers.common.compat.sdk import BaseHook, mask_secret
from requests.adapters import HTTPAdapter
from tenacity import AsyncRetrying, RetryCallState, Retrying

from airflow_provider_gptproto import get_provider_info as provider_info
from airflow_provider_gptproto.exceptions import (
    GPTProtoAuthError,
    GPTProtoBadRequestError,
    GPTProtoConnectionError,
    GPTProtoError,
    GPTProtoNotFoundError,
    GPTProtoTaskMayExistError,
    GPTProtoTimeoutError,
)
from airflow_provider_gptproto.hooks._retry import is_ambiguous_create_failure, retry_kwargs
from airflow_provider_gptproto.hooks._settings import USER_AGENT, ClientSettings, settings_from_connection
from airflow_provider_gptproto.hooks._wire import (
    decode_reply,
    list_params,
    never_connected,
    short,
    task_path,
)
from airflow_provider_gptproto.hooks.download import (
    DownloadedVideo,
    check_video_url,
    content_length,
    open_stream,
    write_atomically,
)
from airflow_provider_gptproto.models import (
    GenerationTask,
    TaskList,
    TaskStatus,
    VideoGenerationRequest,
    parse_create,
    parse_task,
    parse_task_list,
)

if TYPE_CHECKING:
    import aiohttp

T = TypeVar("T")
CONNECT_TIMEOUT_SECONDS = 10.0
MAX_RETRY_WAIT_SECONDS = 30.0
DOWNLOAD_READ_TIMEOUT_SECONDS = 60.0
# Tasks created this long before a lost create reply still count as "maybe ours" (clock skew).
RECONCILE_SKEW_SECONDS = 5.0
# Ids per status read on the list endpoint (its page_size allows 500; URLs stay short at 100).
BATCH_READ_IDS = 100


def _as_is(body: Any) -> Any:
    return body


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class GPTProtoHook(BaseHook):
    """Talk to the GPTProto video-generation task API.

    :param gptproto_conn_id: Airflow connection of type ``gptproto`` (host = base URL, password = key).
    :param timeout: per-request timeout in seconds; overrides the connection's ``timeout`` extra.
    :param retry_limit: attempts per call for transient failures; overrides the ``retry_limit`` extra.
    """

    conn_name_attr = "gptproto_conn_id"
    default_conn_name = "gptproto_default"
    conn_type = "gptproto"
    hook_name = "GPTProto"

    def __init__(
        self,
        gptproto_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        retry_limit: int | None = None,
        max_retry_wait: float = MAX_RETRY_WAIT_SECONDS,
    ) -> None:
        super().__init__()
        self.gptproto_conn_id = gptproto_conn_id
        self._timeout = timeout
        self._retry_limit = retry_limit
        self.max_retry_wait = max_retry_wait
        self._async_settings: ClientSettings | None = None
        self._aio: aiohttp.ClientSession | None = None

    # ----------------------------------------------------------------- UI metadata (Airflow < 3.2)
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        behaviour = provider_info.ui_field_behaviour()
        return {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from wtforms import IntegerField  # type: ignore[import-untyped]
        from wtforms.validators import NumberRange, Optional  # type: ignore[import-untyped]

        fields = provider_info.conn_fields()
        return {
            name: IntegerField(
                spec["label"],
                validators=[Optional(), NumberRange(min=1)],
                default=spec["schema"]["default"],
                description=spec["description"],
            )
            for name, spec in fields.items()
        }

    # --------------------------------------------------------------------------- configuration
    @cached_property
    def settings(self) -> ClientSettings:
        conn = self.get_connection(self.gptproto_conn_id)
        return self._settings_of(conn, conn.extra_dejson)

    async def aget_settings(self) -> ClientSettings:
        """Resolve the connection without blocking the event loop, once per hook."""
        if self._async_settings is None:
            conn = await self.aget_connection(self.gptproto_conn_id)
            extra = await conn.aextra_dejson() if hasattr(conn, "aextra_dejson") else conn.extra_dejson
            self._async_settings = self._settings_of(conn, extra)
        return self._async_settings

    def _settings_of(self, conn: Any, extra: dict[str, Any]) -> ClientSettings:
        settings = settings_from_connection(conn, extra, timeout=self._timeout, retry_limit=self._retry_limit)
        mask_secret(settings.api_key)
        return settings

    @cached_property
    def session(self) -> requests.Session:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=8, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def get_conn(self) -> requests.Session:
        """The pooled session (BaseHook convention)."""
        return self.session

    def close(self) -> None:
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    async def aclose(self) -> None:
        """Release the shared async session; safe to call more than once."""
        session, self._aio = self._aio, None
        if session is not None:
            from airflow_provider_gptproto.hooks import _aiosession

            await _aiosession.release(session)

    # ------------------------------------------------------------------------------ sync API
    def create_task(self, request: VideoGenerationRequest | Mapping[str, Any]) -> GenerationTask:
        """Submit one paid generation task.

        Resent only when the server provably did not act on it (connection refused, 429, 503). Any
        other failure (reply lost, 500, read timeout, a reply without an id) may have created a task,
        so it raises :class:`GPTProtoTaskMayExistError`, naming the tasks of this model listed since
        the request, and never resends: a server may still be processing the lost request, so only a
        later look (the operator's next try) can tell whether it landed.
        """
        req = (
            request
            if isinstance(request, VideoGenerationRequest)
            else VideoGenerationRequest.build(**request)
        )
        sent_at = time.time()
        try:
            return self._request(
                "POST",
                self.settings.tasks_url,
                json_body=req.to_payload(),
                idempotent=False,
                parse=parse_create,
            )
        except GPTProtoError as exc:
            if not is_ambiguous_create_failure(exc):
                raise
            raise GPTProtoTaskMayExistError(
                f"Create failed after the request may have reached the server ({exc}); a paid task may "
                f"have been created. Not resubmitting. {self._candidates_note(sent_at, req.model)}"
            ) from exc

    def _candidates_note(self, since: float, model: str) -> str:
        try:
            found = self.find_tasks_created_since(since - RECONCILE_SKEW_SECONDS, model=model)
        except GPTProtoError as exc:
            return f"Listing recent tasks failed too ({exc})."
        if not found:
            return f"No task of model {model!r} is listed since the request (yet)."
        return f"Tasks of model {model!r} created since the request: {[t.task_id for t in found][:10]}."

    def get_task(self, task_id: str) -> GenerationTask:
        return self._request("GET", self._task_url(task_id), parse=parse_task)

    def list_tasks(
        self,
        status: TaskStatus | str | None = None,
        task_ids: Iterable[str] | None = None,
        model: str | None = None,
        page_num: int = 1,
        page_size: int = 100,
    ) -> TaskList:
        """One page of tasks (upstream keeps only the last 7 days)."""
        params = list_params(status, task_ids, model, page_num, page_size)
        return self._request("GET", self.settings.tasks_url, params=params, parse=parse_task_list)

    def cancel_task(self, task_id: str) -> None:
        """Cancel a queued task, or delete a finished one. A running task cannot be cancelled (4xx)."""
        self._request("DELETE", self._task_url(task_id))

    def find_tasks_created_since(self, since: float, *, model: str | None = None) -> list[GenerationTask]:
        """Tasks of ``model`` created at or after ``since`` (unix seconds), newest pages first."""
        page = self.list_tasks(model=model, page_size=100)
        return [t for t in page.items if t.created_at is None or t.created_at.timestamp() >= since]

    def wait_for_task(
        self,
        task_id: str,
        poll_interval: float = 10.0,
        timeout: float | None = None,
        *,
        deadline: float | None = None,
    ) -> GenerationTask:
        """Poll until the task is terminal and return it (whatever the outcome).

        ``deadline`` is absolute (unix seconds) so a caller resuming after a restart keeps its budget;
        ``timeout`` is relative to now. Raises :class:`GPTProtoTimeoutError` when either passes.
        """
        started = time.monotonic()
        if timeout is not None:
            deadline = min(deadline or float("inf"), time.time() + timeout)
        last: TaskStatus | None = None
        while True:
            task = self.get_task(task_id)
            if task.status != last:
                self.log.info(
                    "GPTProto task %s is %s (%.1f s elapsed)",
                    task_id,
                    task.status.value,
                    time.monotonic() - started,
                )
                last = task.status
            if task.is_terminal:
                return task
            if deadline is not None and time.time() + poll_interval > deadline:
                raise GPTProtoTimeoutError(
                    f"GPTProto task {task_id} still {task.status.value} at its deadline "
                    f"({time.monotonic() - started:.0f} s waited)"
                )
            time.sleep(poll_interval)

    def download_video(self, url: str, destination: Any, *, max_bytes: int | None = None) -> DownloadedVideo:
        """Stream ``url`` into ``destination`` (ObjectStoragePath) atomically; never sends the API key."""
        resp = open_stream(
            self.session, url, (CONNECT_TIMEOUT_SECONDS, DOWNLOAD_READ_TIMEOUT_SECONDS), USER_AGENT
        )
        return write_atomically(resp, destination, max_bytes)

    def video_size(self, url: str) -> int | None:
        """Content-Length of a video URL by HEAD (no API key sent), or None; never raises."""
        try:
            check_video_url(url)
            resp = self.session.head(url, allow_redirects=True, timeout=(CONNECT_TIMEOUT_SECONDS, 10.0))
            return content_length(resp.headers.get("Content-Length")) if resp.ok else None
        except (requests.RequestException, GPTProtoError):
            return None

    def test_connection(self) -> tuple[bool, str]:
        """Read-only probe: look up a task id that cannot exist. 404/400 means the key was accepted."""
        try:
            settings = self.settings
        except Exception as exc:  # no key, bad host or extras: nothing was sent
            return False, f"The connection is not usable: {exc}"
        try:
            self._request("GET", self._task_url("airflow-connection-test"), attempts=1)
        except GPTProtoNotFoundError:
            return True, f"Connected to {settings.base_url}: the API key was accepted."
        except GPTProtoAuthError as exc:
            return False, f"The API key was rejected by the server ({exc})."
        except GPTProtoConnectionError as exc:
            return False, f"Cannot reach the GPTProto API: {exc}"
        except GPTProtoError as exc:
            if getattr(exc, "http_status", None) == 400:
                return True, f"Connected to {settings.base_url}: the API key was accepted."
            return False, f"Unexpected reply from the GPTProto API: {exc}"
        except Exception as exc:  # test_connection must answer, never raise
            return False, f"Connection test failed: {type(exc).__name__}: {exc}"
        return True, f"Connected to {settings.base_url}."

    # ----------------------------------------------------------------------------- async API
    async def aget_task(self, task_id: str) -> GenerationTask:
        settings = await self.aget_settings()
        return await self._arequest("GET", settings.tasks_url + task_path(task_id), parse=parse_task)

    async def aget_tasks(self, task_ids: Sequence[str]) -> dict[str, GenerationTask]:
        """Status of many tasks in few calls: the list endpoint filtered by id, 100 ids per call.

        Ids the list leaves out (older than its 7-day window, or a server without the endpoint)
        are read one by one; ids unknown to the server (404) are left out of the result. Used by
        the batch trigger, so a hundred watched tasks cost one request
        per poll instead of a hundred.
        """
        settings = await self.aget_settings()
        found: dict[str, GenerationTask] = {}
        for chunk in _chunks(task_ids, BATCH_READ_IDS):
            params = list_params(None, chunk, None, 1, len(chunk))
            try:
                page = await self._arequest("GET", settings.tasks_url, parse=parse_task_list, params=params)
            except (GPTProtoNotFoundError, GPTProtoBadRequestError):
                page = TaskList(items=[], total=0)  # no list endpoint: fall back to single reads
            found.update((t.task_id, t) for t in page.items if t.task_id in chunk)
        for task_id in task_ids:
            if task_id not in found:
                try:
                    found[task_id] = await self.aget_task(task_id)
                except GPTProtoNotFoundError:
                    continue  # gone (deleted, or past the retention window): left out
        return found

    def get_tasks(self, task_ids: Sequence[str]) -> dict[str, GenerationTask]:
        """Sync twin of :meth:`aget_tasks`, for the batch operator's non-deferrable path."""
        found: dict[str, GenerationTask] = {}
        for chunk in _chunks(task_ids, BATCH_READ_IDS):
            try:
                page = self.list_tasks(task_ids=chunk, page_size=len(chunk))
            except (GPTProtoNotFoundError, GPTProtoBadRequestError):
                page = TaskList(items=[], total=0)
            found.update((t.task_id, t) for t in page.items if t.task_id in chunk)
        for task_id in task_ids:
            if task_id not in found:
                try:
                    found[task_id] = self.get_task(task_id)
                except GPTProtoNotFoundError:
                    continue
        return found

    async def acancel_task(self, task_id: str) -> None:
        settings = await self.aget_settings()
        await self._arequest("DELETE", settings.tasks_url + task_path(task_id))

    async def avideo_size(self, url: str) -> int | None:
        """Async twin of :meth:`video_size` on the shared session (which carries no API key)."""
        import aiohttp

        session = self._aio_session()
        try:
            check_video_url(url)
            timeout = aiohttp.ClientTimeout(total=10.0, sock_connect=CONNECT_TIMEOUT_SECONDS)
            async with session.head(url, allow_redirects=True, timeout=timeout) as resp:
                return content_length(resp.headers.get("Content-Length")) if resp.status < 400 else None
        except (aiohttp.ClientError, asyncio.TimeoutError, GPTProtoError):
            return None

    # ------------------------------------------------------------------------------ transport
    def _task_url(self, task_id: str) -> str:
        return self.settings.tasks_url + task_path(task_id)

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json_body: Any = None,
        idempotent: bool = True,
        attempts: int | None = None,
        parse: Callable[[Any], T] = _as_is,
    ) -> T:
        settings = self.settings
        retrying = Retrying(
            **retry_kwargs(
                idempotent=idempotent, attempts=attempts or settings.retry_limit, max_wait=self.max_retry_wait
            ),
            before_sleep=self._log_retry,
        )
        for attempt in retrying:
            with attempt:
                return parse(self._send(settings, method, url, params, json_body))
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def _send(self, settings: ClientSettings, method: str, url: str, params: Any, json_body: Any) -> Any:
        try:
            resp = self.session.request(
                method,
                url,
                params=params,
                data=json.dumps(json_body) if json_body is not None else None,
                headers=settings.headers(with_body=json_body is not None),
                timeout=(CONNECT_TIMEOUT_SECONDS, settings.timeout),
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise GPTProtoConnectionError(f"{method} {url}: connect timeout", request_sent=False) from exc
        except requests.exceptions.ConnectionError as exc:
            raise GPTProtoConnectionError(
                f"{method} {url}: {short(exc)}", request_sent=not never_connected(exc)
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise GPTProtoConnectionError(f"{method} {url}: read timeout", request_sent=True) from exc
        return decode_reply(settings, resp.status_code, resp.headers.get("Retry-After"), resp.content)

    async def _arequest(
        self,
        method: str,
        url: str,
        parse: Callable[[Any], T] = _as_is,
        params: list[tuple[str, str]] | None = None,
    ) -> T:
        settings = await self.aget_settings()
        session = self._aio_session()
        if settings.retry_limit <= 1:
            # The trigger's path (one attempt per poll). Skipping tenacity here is behaviour-neutral
            # and matters: its per-call objects form reference cycles (~36 objects a call) that only
            # the cyclic GC frees, and at hundreds of polls a second those drive full collections
            # that stall the triggerer's shared loop for tens of ms (see bench/README.md).
            return parse(await self._asend(session, settings, method, url, params))
        retrying = AsyncRetrying(
            **retry_kwargs(idempotent=True, attempts=settings.retry_limit, max_wait=self.max_retry_wait),
            before_sleep=self._log_retry,
        )
        async for attempt in retrying:
            with attempt:
                return parse(await self._asend(session, settings, method, url, params))
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def _aio_session(self) -> aiohttp.ClientSession:
        if self._aio is None or self._aio.closed:
            # aiohttp is imported only here: a worker never needs it, and importing it costs every
            # task process ~0.1-0.2 s (bench/README.md, benchmark 2).
            from airflow_provider_gptproto.hooks import _aiosession

            self._aio = _aiosession.acquire()
        return self._aio

    async def _asend(
        self,
        session: aiohttp.ClientSession,
        settings: ClientSettings,
        method: str,
        url: str,
        params: list[tuple[str, str]] | None = None,
    ) -> Any:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=settings.timeout, sock_connect=CONNECT_TIMEOUT_SECONDS)
        try:
            async with session.request(
                method, url, params=params, headers=settings.headers(), timeout=timeout
            ) as resp:
                body = await resp.read()
                return decode_reply(settings, resp.status, resp.headers.get("Retry-After"), body)
        except aiohttp.ClientConnectorError as exc:
            raise GPTProtoConnectionError(f"{method} {url}: {short(exc)}", request_sent=False) from exc
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise GPTProtoConnectionError(
                f"{method} {url}: {type(exc).__name__} {short(exc)}", request_sent=True
            ) from exc

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.warning(
            "GPTProto call failed (%s); attempt %d, retrying in %.1f s", exc, state.attempt_number, wait
        )
