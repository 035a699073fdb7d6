"""GPTProtoHook: every byte this provider exchanges with the GPTProto API goes through here.

Not an HttpHook: that builds a Session per call and sends every connection extra as a header. Its
connection conventions (host = base URL, password = key) are kept.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import requests
from airflow.providers.common.compat.sdk import BaseHook, ObjectStoragePath
from tenacity import AsyncRetrying, RetryCallState, Retrying

from airflow_provider_gptproto import get_provider_info as provider_info
from airflow_provider_gptproto.exceptions import (
    GPTProtoAPIError,
    GPTProtoAuthError,
    GPTProtoConnectionError,
    GPTProtoError,
    GPTProtoListUnavailableError,
    GPTProtoNotFoundError,
    GPTProtoRequestError,
    GPTProtoTaskMayExistError,
    GPTProtoTimeoutError,
    GPTProtoVideoDownloadError,
    GPTProtoVideoURLExpiredError,
)
from airflow_provider_gptproto.hooks import _async_connections
from airflow_provider_gptproto.hooks._many_tasks import (
    ListRead,
    Read,
    Reply,
    SingleRead,
    arun_plan,
    list_unsupported,
    read_many,
    run_plan,
)
from airflow_provider_gptproto.hooks._masking import amask_key, mask_key

# Re-exported: the triggers, the sensor and the operator import the poll runners from here.
from airflow_provider_gptproto.hooks._poll import arun_poll as arun_poll
from airflow_provider_gptproto.hooks._poll import run_poll
from airflow_provider_gptproto.hooks._retry import is_ambiguous_create_failure, retry_kwargs
from airflow_provider_gptproto.hooks._settings import (
    TASKS_PATH,
    USER_AGENT,
    ClientSettings,
    settings_from_connection,
)
from airflow_provider_gptproto.hooks._video_http import (
    HEAD_TIMEOUT_SECONDS,
    PinnedAdapter,
    ahead_length,
    content_length,
    download_rules,
    open_stream,
    write_atomically,
)
from airflow_provider_gptproto.hooks._wire import decode_reply, list_params, never_connected, short, task_path
from airflow_provider_gptproto.models import (
    GenerationTask,
    TaskList,
    TaskStatus,
    VideoGenerationRequest,
    parse_create,
    parse_task,
    parse_task_list,
)
from airflow_provider_gptproto.models.poll import TaskEnd, poll_task
from airflow_provider_gptproto.models.poll import is_transient_poll_error as is_transient_poll_error
from airflow_provider_gptproto.models.reconcile import RECONCILE_SKEW_SECONDS as RECONCILE_SKEW_SECONDS
from airflow_provider_gptproto.models.reconcile import Landing, LostCreate, created_since, reconcile
from airflow_provider_gptproto.models.results import RequestSummary, SavedVideoResult
from airflow_provider_gptproto.storage import DownloadedVideo, existing_video
from airflow_provider_gptproto.utils.destination import check_destination, check_if_exists

if TYPE_CHECKING:
    import aiohttp
    from airflow.sdk import Connection

    from airflow_provider_gptproto.hooks._aiosession import SharedSession

T = TypeVar("T")
CONNECT_TIMEOUT_SECONDS = 10.0
MAX_RETRY_WAIT_SECONDS = 30.0
DOWNLOAD_READ_TIMEOUT_SECONDS = 60.0
DEFAULT_POLL_INTERVAL_SECONDS = 10.0
# How long generate_video (and the generate operator) wait for a task by default: 2 hours.
DEFAULT_WAIT_TIMEOUT_SECONDS = 2 * 3600.0


def _as_is(body: Any) -> Any:
    return body


@dataclass(frozen=True)
class SavedVideo:
    """What ``generate_video(destination=...)`` returns: the finished task and its stored video.

    :param task: the succeeded task (its ``seed`` is the one sent, when the API reports none).
    :param file: the stored video: ``uri``, ``bytes``, ``sha256``, ``content_type``.
    :param request: the request's scalar fields (``prompt``, ``model``, ``seed``, ``duration``, ...).
    """

    task: GenerationTask
    file: DownloadedVideo
    request: RequestSummary

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def seed(self) -> int | None:
        return self.task.seed

    @property
    def uri(self) -> str:
        return self.file.uri

    def to_dict(self) -> SavedVideoResult:
        """JSON-safe, for a ``@task``'s return value (the Video tab shows it). None fields are left
        out: a ``@task`` annotated ``-> dict`` pushes each key as an XCom, and Airflow 3.0 refuses None.

        :return: a :class:`~airflow_provider_gptproto.models.results.SavedVideoResult`: the task's
            fields plus ``uri``, ``bytes``, ``sha256`` and ``request``.
        """
        fields = SavedVideoResult(
            kind="saved_video",
            **self.task.to_dict(),
            uri=self.file.uri,
            bytes=self.file.bytes,
            sha256=self.file.sha256,
            request=RequestSummary(**self.request),
        )
        return cast("SavedVideoResult", {name: value for name, value in fields.items() if value is not None})


def _build_request(
    request: VideoGenerationRequest | Mapping[str, Any] | None, fields: Mapping[str, Any]
) -> VideoGenerationRequest:
    """One validated request from a request object, a mapping, keywords, or a mapping plus keywords."""
    if isinstance(request, VideoGenerationRequest):
        if fields:
            raise TypeError(
                "Pass either a VideoGenerationRequest or request fields as keywords, not both "
                f"(got keywords {sorted(fields)})"
            )
        return request
    if request is not None and not isinstance(request, Mapping):
        raise TypeError(
            f"request must be a VideoGenerationRequest or a mapping, got {type(request).__name__}; "
            "or pass the fields as keywords, e.g. create_task(prompt='a red fox')"
        )
    return VideoGenerationRequest.build(**{**(request or {}), **fields})


def _prepare_destination(destination: ObjectStoragePath | str) -> ObjectStoragePath:
    """Check a video's destination and make its folder, before anything is paid for."""
    check_destination(str(destination), templated=False)
    path = destination if isinstance(destination, ObjectStoragePath) else ObjectStoragePath(destination)
    if str(destination).endswith("/") or path.is_dir():
        raise GPTProtoRequestError(
            f"destination {str(destination)!r} is a folder; name the video file in it "
            "(e.g. .../fox.mp4); nothing was generated",
            field="destination",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GPTProtoVideoDownloadError(
            f"Cannot create the folder of destination {path}: {exc.strerror or type(exc).__name__}; "
            "nothing was generated"
        ) from exc
    return path


def _raise_unless_nothing_found(read: Read, exc: GPTProtoAPIError) -> None:
    """Let a read of many tasks go on past a task that is gone, or a list endpoint that is missing."""
    if isinstance(read, SingleRead) and isinstance(exc, GPTProtoNotFoundError):
        return  # deleted, or past the retention window: left out of the result
    if isinstance(read, ListRead) and list_unsupported(exc):
        return  # read those ids one by one instead
    raise exc


class GPTProtoHook(BaseHook):
    """Talk to the GPTProto video-generation task API.

    The connection is read lazily, on the first call, so building a hook costs nothing. Every
    method raises a subclass of :class:`~airflow_provider_gptproto.exceptions.GPTProtoError`, never a
    bare ``requests`` or ``aiohttp`` error, and no message ever contains the API key. Besides the
    errors a method names, an API call raises ``GPTProtoAuthError`` (the key was rejected: 401/403),
    ``GPTProtoAPIError`` (any other error reply, after the retries its policy allows) or
    ``GPTProtoConnectionError`` (the API could not be reached within ``retry_limit`` attempts).

    :param gptproto_conn_id: Airflow connection of type ``gptproto`` (host = base URL, password =
        API key). Default ``"gptproto_default"``.
    :param timeout: seconds per HTTP request; overrides the connection's ``timeout`` extra. Default
        None: the extra, else 60.
    :param retry_limit: attempts per call for transient failures (429, 5xx, dropped connections);
        overrides the connection's ``retry_limit`` extra. Default None: the extra, else 5.
    :param max_retry_wait: longest pause, in seconds, between two attempts of one call. Default 30.
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
        self._aio: SharedSession | None = None

    # ----------------------------------------------------------------- UI metadata (Airflow < 3.2)
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form layout for Airflow before 3.2 (newer ones read ``get_provider_info``).

        :return: hidden fields, relabelings and placeholders of the form.
        """
        return {key.replace("-", "_"): value for key, value in provider_info.ui_field_behaviour().items()}

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form (timeout, retry_limit, max_bytes, ...) for Airflow before 3.2.

        :return: one wtforms field per connection extra, with its default.
        """
        from wtforms import BooleanField, IntegerField  # type: ignore[import-untyped]
        from wtforms.validators import NumberRange, Optional  # type: ignore[import-untyped]

        fields = provider_info.conn_fields()
        return {
            name: BooleanField(
                spec["label"], default=spec["schema"]["default"], description=spec["description"]
            )
            if "boolean" in spec["schema"]["type"]
            else IntegerField(
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
        """The connection as the client uses it (base URL, key, timeout, retry limit), read once.

        :raises GPTProtoAuthError: the connection has no API key.
        :raises GPTProtoRequestError: its host or extras are invalid.
        """
        conn = self.get_connection(self.gptproto_conn_id)
        settings = self._settings_of(conn, conn.extra_dejson)
        mask_key(settings.api_key)
        return settings

    async def aget_settings(self) -> ClientSettings:
        """Resolve the connection without blocking the event loop, once per hook (and one look-up
        per connection for the hooks of a loop that start within a minute).

        :return: base URL, key, request timeout and retry limit.
        :raises GPTProtoAuthError: the connection has no API key.
        :raises GPTProtoRequestError: its host or extras are invalid.
        """
        if self._async_settings is None:
            # Shared by this loop's hooks for a minute (hooks/_async_connections: why).
            conn, extra = await _async_connections.lookup(self.gptproto_conn_id, self)
            settings = self._settings_of(conn, extra)
            await amask_key(settings.api_key)
            self._async_settings = settings
        return self._async_settings

    def _settings_of(self, conn: Connection, extra: dict[str, Any]) -> ClientSettings:
        return settings_from_connection(conn, extra, timeout=self._timeout, retry_limit=self._retry_limit)

    @cached_property
    def session(self) -> requests.Session:
        """One pooled HTTP session per hook (no urllib3 retries: the retry policy is ours)."""
        session = requests.Session()
        adapter = PinnedAdapter(pool_connections=2, pool_maxsize=8, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def get_conn(self) -> requests.Session:
        """The hook's pooled ``requests.Session`` (BaseHook convention); it carries no API key.

        :return: the session, created on first use.
        """
        return self.session

    def close(self) -> None:
        """Close the pooled HTTP session; the hook opens a new one if used again. Safe to repeat."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    async def aclose(self) -> None:
        """Release this hook's hold on the shared async session; safe to call more than once."""
        shared, self._aio = self._aio, None
        if shared is not None:
            from airflow_provider_gptproto.hooks import _aiosession

            await _aiosession.release(shared.session)

    # ------------------------------------------------------------------------------ sync API
    def create_task(
        self, request: VideoGenerationRequest | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> GenerationTask:
        """Submit one paid generation task, validated first; return it as created (usually pending).

        Without a ``seed`` one is drawn and sent, so the result names it (``seed=-1``: the server's
        choice). A create is resent only when the server provably did not act on it (docs/hook.md).

        :param request: the whole request, as a ``VideoGenerationRequest`` or a mapping of its fields
            (keywords override its keys). Default None: the keywords alone.
        :param fields: request fields (``prompt``, ``model``, ``duration``, ``seed``, ...: docs/requests.md).
        :return: the created task, with its ``task_id`` and the ``seed`` sent.
        :raises GPTProtoRequestError: a field is unknown or invalid (nothing was sent).
        :raises GPTProtoTaskMayExistError: the request may have reached the server; a task may exist.
        :raises GPTProtoAuthError: the key was rejected (401/403), e.g. no balance.
        """
        req = _build_request(request, fields).with_seed()
        sent_at = time.time()
        try:
            task = self._request(
                "POST",
                self.settings.tasks_url,
                json_body=req.to_payload(),
                idempotent=False,
                parse=parse_create,
            )
            return task.with_seed(req.seed)
        except GPTProtoError as exc:
            if not is_ambiguous_create_failure(exc):
                raise
            raise GPTProtoTaskMayExistError(
                f"Create failed after the request may have reached the server ({exc}); a paid task may "
                f"have been created. Not resubmitting. {self._candidates_note(sent_at, req.model)}"
            ) from exc

    def _candidates_note(self, since: float, model: str) -> str:
        lost = LostCreate(since, model)
        try:
            found = reconcile(lost, self.find_tasks_created_since(lost.since, model=model))
        except GPTProtoListUnavailableError:
            return (
                "This API has no list endpoint, so whether a task was created cannot be checked from "
                "here: look for it in your GPTProto account before submitting again."
            )
        except GPTProtoError as exc:
            return f"Listing recent tasks failed too ({exc})."
        if found.landing is Landing.NOT_LANDED:
            return f"No task of model {model!r} is listed since the request (yet)."
        return f"Tasks of model {model!r} created since the request: {list(found.candidates[:10])}."

    def get_task(self, task_id: str) -> GenerationTask:
        """Fetch one task's current state (retried on transient errors up to ``retry_limit``).

        :param task_id: the remote task id, e.g. ``create_task(...).task_id``.
        :return: the task, normalised from whichever reply shape the server used.
        :raises GPTProtoNotFoundError: no such task (404), e.g. deleted or past retention.
        :raises GPTProtoResponseError: the reply could not be read (no id, unknown status).
        """
        return self._request("GET", self._task_url(task_id), parse=parse_task)

    def list_tasks(
        self,
        status: TaskStatus | str | None = None,
        task_ids: Iterable[str] | None = None,
        model: str | None = None,
        page_num: int = 1,
        page_size: int = 100,
    ) -> TaskList:
        """One page of tasks, newest first (upstream keeps 7 days; GPTProto does not document this call).

        :param status: only tasks in this state (a ``TaskStatus`` or any status word). Default None: all.
        :param task_ids: only these task ids. Default None: all.
        :param model: only tasks of this model. Default None: all.
        :param page_num: page number, 1..500. Default 1.
        :param page_size: tasks per page, 1..500. Default 100.
        :return: the page's ``items`` (``GenerationTask``) and the server's ``total``.
        :raises GPTProtoRequestError: a filter or page value is invalid (nothing was sent).
        :raises GPTProtoListUnavailableError: the API has no list endpoint (404/405 on the list URL).
        """
        params = list_params(status, task_ids, model, page_num, page_size)
        try:
            return self._request("GET", self.settings.tasks_url, params=params, parse=parse_task_list)
        except GPTProtoAPIError as exc:
            if exc.http_status not in (404, 405):
                raise
            raise GPTProtoListUnavailableError(
                f"The GPTProto API at {self.settings.base_url} has no list endpoint (GET "
                f"{TASKS_PATH} answered HTTP {exc.http_status}); listing tasks is not possible there",
                http_status=exc.http_status,
            ) from exc

    def cancel_task(self, task_id: str) -> None:
        """Cancel a queued task, or delete a finished one. A running task cannot be cancelled (4xx).

        :param task_id: the remote task id.
        :raises GPTProtoBadRequestError: the server refused (the task is running or already cancelled).
        :raises GPTProtoNotFoundError: no such task (404).
        """
        self._request("DELETE", self._task_url(task_id))

    def find_tasks_created_since(self, since: float, *, model: str | None = None) -> list[GenerationTask]:
        """Tasks of ``model`` created at or after ``since`` (or at an unknown time), from the newest
        page of the list call: to reconcile a create whose reply was lost.

        :param since: unix seconds.
        :param model: only tasks of this model. Default None: any model.
        :return: the matching tasks, newest first (at most one page of 100).
        :raises GPTProtoListUnavailableError: the API has no list endpoint, so nothing can be checked.
        """
        return created_since(self.list_tasks(model=model, page_size=100).items, since)

    def wait_for_task(
        self,
        task_id: str,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        timeout: float | None = None,
        *,
        deadline: float | None = None,
        raise_on_failure: bool = True,
    ) -> GenerationTask:
        """Poll until the task is terminal, riding out transient API errors with backoff until the
        deadline, as the trigger does (docs/hook.md, "Wait for it").

        :param task_id: the remote task id.
        :param poll_interval: seconds between status checks. Default 10.
        :param timeout: seconds from now to give up. Default None: no relative limit.
        :param deadline: absolute unix time to give up (a resumed caller keeps its budget); with
            ``timeout`` too, the earlier applies. Default None; with neither, the wait never times out.
        :param raise_on_failure: raise for a task that ended without a video. Default True; False
            returns it to inspect ``status`` and ``error_message``.
        :return: the terminal task (with ``raise_on_failure``, always a succeeded one).
        :raises GPTProtoTaskFailedError: the task ended failed, expired or cancelled.
        :raises GPTProtoTaskContentPolicyError: it failed because of content moderation (a subclass).
        :raises GPTProtoTimeoutError: the deadline passed first (the remote task is left as it is).
        :raises GPTProtoNotFoundError: no such task (404).
        """
        now = time.time()
        if timeout is not None:
            deadline = min(deadline or float("inf"), now + timeout)
        plan = poll_task(task_id, poll_interval, now, deadline=deadline)

        def check(_: object) -> GenerationTask:  # one attempt: the plan owns the backoff, as the trigger's
            return self._request("GET", self._task_url(task_id), attempts=1, parse=parse_task)

        end = run_poll(plan, check, self.log.log, time.sleep, time.time)
        assert isinstance(end, TaskEnd)  # with a sleep, the runner returns only the end
        if end.error is not None:
            raise end.error
        if end.task is None or end.status == "timeout":
            raise GPTProtoTimeoutError(end.message)
        if raise_on_failure:
            end.task.raise_for_status()
        return end.task

    @overload
    def generate_video(
        self,
        request: VideoGenerationRequest | Mapping[str, Any] | None = None,
        /,
        *,
        destination: None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT_SECONDS,
        cancel_on_timeout: bool = True,
        **fields: Any,
    ) -> GenerationTask: ...

    @overload
    def generate_video(
        self,
        request: VideoGenerationRequest | Mapping[str, Any] | None = None,
        /,
        *,
        destination: ObjectStoragePath | str,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT_SECONDS,
        cancel_on_timeout: bool = True,
        **fields: Any,
    ) -> SavedVideo: ...

    def generate_video(
        self,
        request: VideoGenerationRequest | Mapping[str, Any] | None = None,
        /,
        *,
        destination: ObjectStoragePath | str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT_SECONDS,
        cancel_on_timeout: bool = True,
        **fields: Any,
    ) -> GenerationTask | SavedVideo:
        """Create a task, wait for it and return the finished task: ``create_task`` + ``wait_for_task``.

        It keeps no record across Airflow retries (a retry pays for a new video). With ``destination``
        the video is stored too, the destination checked before anything is paid for.

        :param request: the whole request, as for :meth:`create_task`. Default None: the keywords.
        :param fields: request fields as keywords (``prompt``, ``duration``, ``dimension``, ``seed``, ...).
        :param poll_interval: seconds between status checks. Default 10.
        :param timeout: seconds to wait for the video, from the create. Default 7200 (2 hours);
            None waits without limit.
        :param cancel_on_timeout: cancel the remote task when the timeout passes (it still can be if
            queued). Default True.
        :param destination: the video's file, an ``ObjectStoragePath`` or path/URL
            (``s3://aws_default@bucket/fox.mp4``); missing folders are made. Default None: not stored.
        :return: without ``destination``, the succeeded task (with ``video_url`` and the ``seed``
            sent); with it, a :class:`SavedVideo` (``to_dict()`` for XCom).
        :raises GPTProtoRequestError: a field or the destination is invalid (nothing was sent or paid).
        :raises GPTProtoTaskFailedError: the task ended failed, expired or cancelled.
        :raises GPTProtoTaskContentPolicyError: it failed because of content moderation.
        :raises GPTProtoTimeoutError: the task did not finish within ``timeout``.
        :raises GPTProtoTaskMayExistError: the create's reply was lost; a task may exist.
        :raises GPTProtoVideoDownloadError: storing the video failed (it was paid for: the task id is named).
        """
        req = _build_request(request, fields).with_seed()
        target = _prepare_destination(destination) if destination is not None else None
        task = self.create_task(req)
        self.log.info("Created GPTProto task %s (seed %s)", task.task_id, task.seed)
        try:
            finished = self.wait_for_task(task.task_id, poll_interval, timeout).with_seed(req.seed)
        except GPTProtoTimeoutError:
            if cancel_on_timeout:
                self.cancel_after_timeout(task.task_id)
            raise
        if target is None:
            return finished
        return SavedVideo(finished, self.download_task_video(finished, target), req.summary())

    def download_task_video(
        self, task: GenerationTask, destination: ObjectStoragePath, **options: Any
    ) -> DownloadedVideo:
        """Store a succeeded task's video; if its URL expired, read the task once for a fresh one.

        :param task: the succeeded task.
        :param destination: the file to write (as for :meth:`download_video`).
        :param options: :meth:`download_video`'s keywords (``max_bytes``, ``if_exists``, ``sweep_stale``).
        :return: ``DownloadedVideo(uri, bytes, sha256, content_type)``.
        :raises GPTProtoVideoURLExpiredError: the URL expired, and the fresh one too (or none came).
        :raises GPTProtoVideoDownloadError: the task has no video URL, or storing it failed (see
            :meth:`download_video`).
        """
        if not task.video_url:
            raise GPTProtoVideoDownloadError(f"GPTProto task {task.task_id} succeeded but has no video URL")
        try:
            return self.download_video(task.video_url, destination, **options)
        except GPTProtoVideoURLExpiredError:
            self.log.info("Video URL of %s expired; asking the API for a fresh one", task.task_id)
            fresh = self.get_task(task.task_id).video_url
            if not fresh:
                raise
            return self.download_video(fresh, destination, **options)

    def cancel_after_timeout(self, task_id: str) -> None:
        """Cancel a task its caller stopped waiting for; log, never raise (the timeout is the error).

        :param task_id: the remote task id.
        """
        try:
            self.cancel_task(task_id)
            self.log.info("Cancelled GPTProto task %s after the timeout", task_id)
        except GPTProtoError as exc:
            self.log.warning("GPTProto task %s could not be cancelled (%s)", task_id, exc)

    def download_video(
        self,
        url: str,
        destination: ObjectStoragePath,
        *,
        max_bytes: int | None = None,
        if_exists: str = "overwrite",
        sweep_stale: bool = True,
    ) -> DownloadedVideo:
        """Stream a video into storage atomically (a hidden ``.part`` sibling renamed once complete),
        with flat memory; never sends the API key. Every URL and redirect hop is checked before it is
        connected to (docs/connection.md, "Which URLs are fetched"); the first bytes must be a video.

        :param url: the task's ``video_url`` (http or https; pre-signed, no credentials needed).
        :param destination: the file to write, an ``ObjectStoragePath``; its parent must exist.
        :param max_bytes: refuse a video larger than this many bytes. Default None: the connection's
            ``max_bytes`` extra, else 4 GiB.
        :param if_exists: when ``destination`` exists: ``"overwrite"`` (default; atomically),
            ``"skip"`` (keep and describe it) or ``"fail"``.
        :param sweep_stale: first remove the ``.part`` files killed downloads left there (lists the
            folder). Default True; False after ``storage.sweep_stale_parts``.
        :return: ``DownloadedVideo(uri, bytes, sha256, content_type)``.
        :raises GPTProtoRequestError: ``if_exists`` is not one of the three values, or the
            destination's filesystem cannot be loaded (the message names the package to install).
        :raises GPTProtoVideoDestinationExistsError: the destination exists and ``if_exists="fail"``.
        :raises GPTProtoVideoURLExpiredError: the URL answered 403/404/410 (get the task again).
        :raises GPTProtoVideoDownloadError: any other failure (not a video, truncated, over ``max_bytes``,
            not writable); nothing is left at the destination.
        :raises GPTProtoURLRefusedError: a URL or redirect hop was refused (a download error too).
        """
        check_if_exists(if_exists)
        # Before any byte moves: "Install s3fs to access S3" names neither the provider nor the field.
        check_destination(str(destination), templated=False, check_connection=False)
        existing = existing_video(destination, if_exists)
        if existing is not None:
            self.log.info("%s already exists; if_exists='skip' keeps it", destination)
            return existing
        policy, default_max = download_rules(lambda: self.settings)
        timeouts = (CONNECT_TIMEOUT_SECONDS, DOWNLOAD_READ_TIMEOUT_SECONDS)
        resp = open_stream(self.session, url, timeouts, USER_AGENT, policy)
        return write_atomically(resp, destination, max_bytes or default_max, sweep=sweep_stale)

    def video_size(self, url: str) -> int | None:
        """Size of a video by HEAD (no API key sent); never raises.

        :param url: a video URL (http or https).
        :return: its Content-Length in bytes, or None when unknown or unreachable.
        """
        try:
            timeouts = (CONNECT_TIMEOUT_SECONDS, HEAD_TIMEOUT_SECONDS)
            policy = download_rules(lambda: self.settings)[0]
            with open_stream(self.session, url, timeouts, USER_AGENT, policy, method="HEAD") as resp:
                return content_length(resp.headers.get("Content-Length"))
        except (requests.RequestException, GPTProtoError):
            return None

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection with one read-only request (the UI's and CLI's "Test"); never raises.

        Looks up a task id that cannot exist: a 404 (or 400) means the server accepted the key.

        :return: ``(ok, message)``; the message never contains the key.
        """
        try:
            settings = self.settings
        except Exception as exc:  # no key, bad host or extras: nothing was sent
            return False, f"The connection is not usable: {exc}"
        try:
            self._request("GET", self._task_url("airflow-connection-test"), attempts=1)
        except GPTProtoAuthError as exc:
            return False, f"The API key was rejected by the server ({exc})."
        except GPTProtoConnectionError as exc:
            return False, f"Cannot reach the GPTProto API: {exc}"
        except GPTProtoError as exc:
            if isinstance(exc, GPTProtoNotFoundError) or getattr(exc, "http_status", None) == 400:
                return True, f"Connected to {settings.base_url}: the API key was accepted."
            return False, f"Unexpected reply from the GPTProto API: {exc}"
        except Exception as exc:  # test_connection must answer, never raise
            return False, f"Connection test failed: {type(exc).__name__}: {exc}"
        return True, f"Connected to {settings.base_url}."

    # ----------------------------------------------------------------------------- async API
    async def aget_task(self, task_id: str) -> GenerationTask:
        """Async twin of :meth:`get_task` on a shared aiohttp session (for triggers).

        :param task_id: the remote task id.
        :return: the task.
        :raises GPTProtoError: as :meth:`get_task` does.
        """
        settings = await self.aget_settings()
        return await self._arequest("GET", settings.tasks_url + task_path(task_id), parse=parse_task)

    async def aget_tasks(self, task_ids: Sequence[str]) -> dict[str, GenerationTask]:
        """Status of many tasks in few calls (the batch trigger's poll): the list endpoint filtered
        by id, 100 ids per call. Ids it leaves out (past its 7-day window, or no list endpoint) are
        read one by one; ids unknown to the server (404) are left out of the result.

        :param task_ids: the remote task ids.
        :return: the tasks found, by id.
        """
        settings = await self.aget_settings()

        async def perform(read: Read) -> Reply:
            try:
                if isinstance(read, SingleRead):
                    return await self.aget_task(read.task_id)
                params = list_params(None, read.ids, None, 1, len(read.ids))
                return await self._arequest("GET", settings.tasks_url, parse=parse_task_list, params=params)
            except GPTProtoAPIError as exc:
                _raise_unless_nothing_found(read, exc)
                return None

        return await arun_plan(read_many(task_ids), perform)

    def get_tasks(self, task_ids: Sequence[str]) -> dict[str, GenerationTask]:
        """Sync twin of :meth:`aget_tasks`, for the batch operator's non-deferrable path.

        :param task_ids: the remote task ids.
        :return: the tasks found, by id.
        :raises GPTProtoError: as :meth:`aget_tasks` does.
        """

        def perform(read: Read) -> Reply:
            try:
                if isinstance(read, SingleRead):
                    return self.get_task(read.task_id)
                return self.list_tasks(task_ids=read.ids, page_size=len(read.ids))
            except GPTProtoAPIError as exc:
                _raise_unless_nothing_found(read, exc)
                return None

        return run_plan(read_many(task_ids), perform)

    async def acancel_task(self, task_id: str) -> None:
        """Async twin of :meth:`cancel_task`.

        :param task_id: the remote task id.
        :raises GPTProtoError: as :meth:`cancel_task` does.
        """
        settings = await self.aget_settings()
        await self._arequest("DELETE", settings.tasks_url + task_path(task_id))

    async def avideo_size(self, url: str) -> int | None:
        """Async twin of :meth:`video_size` on the shared session (which carries no API key).

        :param url: a video URL (http or https).
        :return: its Content-Length in bytes, or None when unknown; never raises.
        """
        import aiohttp

        shared = self._aio_session()
        try:
            settings, timeout = await self.aget_settings(), _aio_timeout(HEAD_TIMEOUT_SECONDS)
            return await ahead_length(shared, url, settings, timeout)
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
        for attempt in Retrying(**self._retry_policy(idempotent, attempts or settings.retry_limit)):
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
        shared = self._aio_session()
        if settings.retry_limit <= 1:
            # The trigger's path (one attempt per poll), without tenacity: its reference cycles drive
            # full GC collections that stall the triggerer's loop at scale (bench/README.md).
            return parse(await self._asend(shared, settings, method, url, params))
        async for attempt in AsyncRetrying(**self._retry_policy(True, settings.retry_limit)):
            with attempt:
                return parse(await self._asend(shared, settings, method, url, params))
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def _aio_session(self) -> SharedSession:
        if self._aio is None or self._aio.session.closed:
            # aiohttp is imported only here: a worker never needs it, and importing it costs every
            # task process ~0.1-0.2 s (bench/README.md, benchmark 2).
            from airflow_provider_gptproto.hooks import _aiosession

            self._aio = _aiosession.acquire()
        return self._aio

    async def _asend(
        self,
        shared: SharedSession,
        settings: ClientSettings,
        method: str,
        url: str,
        params: list[tuple[str, str]] | None = None,
    ) -> Any:
        import aiohttp

        timeout = _aio_timeout(settings.timeout)
        try:
            async with (
                shared.slot(settings.timeout),
                shared.session.request(
                    method, url, params=params, headers=settings.headers(), timeout=timeout
                ) as resp,
            ):
                body = await resp.read()
                return decode_reply(settings, resp.status, resp.headers.get("Retry-After"), body)
        except aiohttp.ClientConnectorError as exc:
            raise GPTProtoConnectionError(f"{method} {url}: {short(exc)}", request_sent=False) from exc
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise GPTProtoConnectionError(
                f"{method} {url}: {type(exc).__name__} {short(exc)}", request_sent=True
            ) from exc

    def _retry_policy(self, idempotent: bool, attempts: int) -> dict[str, Any]:
        """tenacity's arguments for one call (``hooks/_retry``), logging each retry."""
        policy = retry_kwargs(idempotent=idempotent, attempts=attempts, max_wait=self.max_retry_wait)
        return {**policy, "before_sleep": self._log_retry}

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.warning(
            "GPTProto call failed (%s); attempt %d, retrying in %.1f s", exc, state.attempt_number, wait
        )


@lru_cache(maxsize=8)
def _aio_timeout(total: float) -> aiohttp.ClientTimeout:
    """One immutable ClientTimeout per request timeout, not a new one per poll."""
    import aiohttp

    return aiohttp.ClientTimeout(total=total, sock_connect=CONNECT_TIMEOUT_SECONDS)
