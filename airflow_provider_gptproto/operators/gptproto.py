"""Operators: generate a video (create + wait) and land a finished video in storage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.common.compat.sdk import AirflowFailException, ObjectStoragePath

from airflow_provider_gptproto.assets import GPTPROTO_VIDEOS
from airflow_provider_gptproto.exceptions import (
    GPTProtoError,
    GPTProtoListUnavailableError,
    GPTProtoNotFoundError,
    GPTProtoTaskMayExistError,
    GPTProtoTimeoutError,
    GPTProtoVideoDownloadError,
)
from airflow_provider_gptproto.hooks.gptproto import (
    DEFAULT_POLL_INTERVAL_SECONDS,
    DEFAULT_WAIT_TIMEOUT_SECONDS,
    GPTProtoHook,
    is_transient_poll_error,
)
from airflow_provider_gptproto.links.gptproto import GPTProtoVideoLink
from airflow_provider_gptproto.models import GenerationTask, TaskStatus, VideoGenerationRequest
from airflow_provider_gptproto.models import batch_plan as plan
from airflow_provider_gptproto.models.reconcile import RECONCILE_SETTLE_SECONDS as RECONCILE_SETTLE_SECONDS
from airflow_provider_gptproto.models.reconcile import Landing, LostCreate, reconcile
from airflow_provider_gptproto.models.request import stable_seed
from airflow_provider_gptproto.models.results import DownloadResult, GenerateResult
from airflow_provider_gptproto.operators.base import GPTProtoBaseOperator
from airflow_provider_gptproto.triggers.batch import BatchOutcome, parse_batch_event
from airflow_provider_gptproto.triggers.gptproto import GPTProtoTaskTrigger, parse_event
from airflow_provider_gptproto.utils.destination import check_destination, check_if_exists, is_static
from airflow_provider_gptproto.utils.poster import POSTER_KEY, store_poster
from airflow_provider_gptproto.utils.results import announce, deliver
from airflow_provider_gptproto.utils.task_state import TASK_KEY, RemoteTaskRecord, TaskState

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context
    from airflow.sdk.definitions.mappedoperator import OperatorPartial
    from airflow.sdk.types import Logger

# Every request option is an operator argument (and templated); ``content`` is the upstream items form.
REQUEST_FIELDS = (*(name for name in VideoGenerationRequest.model_fields if name != "extra_body"), "content")
DEFAULT_TIMEOUT = timedelta(seconds=DEFAULT_WAIT_TIMEOUT_SECONDS)
KILL_CANCEL_TIMEOUT_SECONDS = 10.0
TAKE_IDS_XCOM_KEY = "gptproto_take_task_ids"  # with takes > 1: every take's remote id, in take order


class GPTProtoGenerateVideoOperator(GPTProtoBaseOperator):
    """Create one GPTProto generation task (or one per take) and (by default) wait for its video.

    Every request parameter is templated and checked at parse time (static) or before any request
    (rendered); unset (None) ones are left out, so the server's default applies. Returns a
    :class:`~airflow_provider_gptproto.models.results.GenerateResult` (with ``takes`` > 1, a list of
    them ordered by take); pushes ``gptproto_task_id`` to XCom once the task exists, and
    ``gptproto_video_url`` (the "GPTProto video" link) once it has a video (with takes: the last take's).

    :param prompt: text description of the video. Default None (required unless ``content`` has it).
    :param model: model or endpoint id. Default None: ``seedance-1-0-lite-i2v-250428``.
    :param duration: ``"5s"`` or ``"10s"`` (seed format) or seconds 2..15 or -1 (upstream). Default None
        (the server's 5 s).
    :param dimension: seed format: ``"768:768"``, ``"768:1280"`` or ``"1280:768"``. Default None: ``768:768``.
    :param seed: 1..2147483647 (-1: the server draws one, upstream format). Default None: one drawn
        from the task instance's identity, so every try sends the same seed (docs/requests.md).
    :param loop: seed format: loop the video. Default None (server default False).
    :param logo: seed format: watermark logo ``{"position": ..., "url": ...}``. Default None.
    :param images: upstream format: image URLs or ``{"url", "role"}`` items with roles
        ``first_frame`` / ``last_frame`` / ``reference_image``. Default None.
    :param content: upstream format: the raw ``content`` items (text and image_url). Default None.
    :param ratio: upstream format, e.g. ``"16:9"``, ``"9:16"``, ``"1:1"``, ``"adaptive"``. Default None.
    :param resolution: upstream format: ``"480p"``, ``"720p"`` or ``"1080p"``. Default None.
    :param frames: upstream format: number of frames. Default None.
    :param framespersecond: upstream format: frame rate. Default None.
    :param camera_fixed: upstream format: keep the camera still. Default None.
    :param watermark: upstream format: add the vendor's watermark. Default None.
    :param callback_url: upstream format: URL the server POSTs status changes to. Default None.
    :param return_last_frame: upstream format: also return the last frame as an image. Default None.
    :param service_tier: upstream format: ``"default"`` or ``"flex"``. Default None.
    :param execution_expires_after: upstream format: seconds (3600..259200) before the server expires
        the task. Default None; with ``service_tier="flex"``, ``timeout`` (docs/requests.md).
    :param generate_audio: upstream format: generate a sound track. Default None.
    :param draft: upstream format: a cheaper draft render. Default None.
    :param takes: videos of this request (default 1), each its own paid task and seed (take 1's is
        ``seed``), waited for at once; a retry never pays twice for a take.
    :param seeds: every take's seed, ``takes`` distinct integers (instead of ``seed``). Default None.
    :param gptproto_conn_id: the GPTProto connection (templated). Default ``"gptproto_default"``.
    :param wait_for_completion: wait for the video. Default True; False only creates the task and
        returns it (wait later with :class:`~airflow_provider_gptproto.sensors.gptproto.GPTProtoTaskSensor`).
    :param deferrable: wait in the triggerer. Default: ``[operators] default_deferrable``.
    :param poll_interval: seconds between status checks (backing off while the API fails). Default 10.
    :param timeout: budget for the remote task (``timedelta`` or seconds), an absolute deadline from
        its create across deferrals and retries; then it is cancelled if it can be. Default 2 hours.
    :param retry_on_content_policy: retry the Airflow task after a content-policy rejection. Default
        False: the same prompt is rejected again.
    :param cancel_on_kill: cancel the remote task when the Airflow task is killed, marked failed or
        success, or cleared while it waits. Default True.
    :param kwargs: any other ``BaseOperator`` argument (``task_id``, ``retries``, ``pool``, ...).
    """

    template_fields: Sequence[str] = (*REQUEST_FIELDS, "gptproto_conn_id")
    template_fields_renderers = {"logo": "json", "images": "json", "content": "json"}
    operator_extra_links = (GPTProtoVideoLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        prompt: str | None = None,
        model: str | None = None,
        duration: str | int | None = None,
        dimension: str | None = None,
        seed: int | str | None = None,
        loop: bool | None = None,
        logo: dict[str, Any] | None = None,
        images: list[Any] | None = None,
        content: list[dict[str, Any]] | None = None,
        ratio: str | None = None,
        resolution: str | None = None,
        frames: int | None = None,
        framespersecond: int | None = None,
        camera_fixed: bool | None = None,
        watermark: bool | None = None,
        callback_url: str | None = None,
        return_last_frame: bool | None = None,
        service_tier: str | None = None,
        execution_expires_after: int | None = None,
        generate_audio: bool | None = None,
        draft: bool | None = None,
        takes: int = 1,
        seeds: list[int] | None = None,
        gptproto_conn_id: str = GPTProtoHook.default_conn_name,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        timeout: timedelta | float = DEFAULT_TIMEOUT,
        retry_on_content_policy: bool = False,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            gptproto_conn_id=gptproto_conn_id,
            deferrable=deferrable,
            poll_interval=poll_interval,
            timeout=timeout,
            **kwargs,
        )
        given = locals()
        for name in REQUEST_FIELDS:  # each request field under its own name, templated
            setattr(self, name, given[name])
        self.wait_for_completion = wait_for_completion
        self.retry_on_content_policy = retry_on_content_policy
        self.cancel_on_kill = cancel_on_kill
        plan.check_takes(takes, seeds, seed)
        self.takes, self.seeds = takes, seeds
        self._remote_task_id: str | None = None
        self._take_ids: list[str] = []  # with takes > 1, every take's remote id
        self._result: GenerateResult | None = None  # the finished task, for OpenLineage
        if is_static(self._request_params()):
            self.build_request()  # fail at parse time, not at 3 a.m.

    # ------------------------------------------------------------------------------ helpers
    def _request_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in REQUEST_FIELDS}

    def build_request(self, context: Context | None = None) -> VideoGenerationRequest:
        """The validated request; with ``context``, as sent (a seed drawn when none was given)."""
        request = VideoGenerationRequest.build(**self._request_params())
        if context is None:
            return request
        ti = context["ti"]
        seeded = request.with_seed(stable_seed(ti.dag_id, ti.run_id, ti.task_id, ti.map_index))
        return seeded.expiring_within(self.timeout)  # flex: the remote task expires with the wait

    def build_requests(self, context: Context) -> list[VideoGenerationRequest]:
        """Every take's request as sent: take 1's as :meth:`build_request`, the others' seeds its own."""
        request = self.build_request(context)
        if self.takes == 1:
            return [request]
        ti = context["ti"]
        drawn = stable_seed(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
        first = request.seed if request.seed and request.seed > 0 else drawn  # -1: the server's, so draw
        seeds = plan.take_seeds(first, self.takes, self.seeds)
        return [request.model_copy(update={"seed": seed}) for seed in seeds]

    def _take(
        self, result: GenerateResult, request: VideoGenerationRequest | None, take: int
    ) -> GenerateResult:
        if request is not None:
            result["request"] = request.summary()
        result["take"], result["takes"] = take, self.takes
        return result

    # ------------------------------------------------------------------------------ execution
    def execute(self, context: Context) -> GenerateResult | list[GenerateResult] | None:
        if self.takes > 1:
            return self._execute_takes(context)
        request = self.build_request(context)  # rendered values, validated before any request
        hook = self.hook
        state = TaskState(context)
        task, deadline = self._reattach_or_create(hook, state, request, context)
        self._remote_task_id = task.task_id
        if not self.wait_for_completion:
            state.clear()
            return self._take(GenerateResult(kind="generate", **task.to_dict()), None, 1)
        if not self.deferrable:
            return self._wait_in_worker(task, deadline, context, state)
        task = self._peek(task)  # cheap check first: short tasks never defer
        if task.is_terminal:
            return self._finish(hook.video_size, task, context, state)
        self.defer(
            trigger=GPTProtoTaskTrigger(
                gptproto_task_id=task.task_id,
                gptproto_conn_id=self.gptproto_conn_id,
                poll_interval=self.poll_interval,
                deadline=deadline,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
        )
        return None  # not reached: defer() raises TaskDeferred

    def _peek(self, task: GenerationTask) -> GenerationTask:
        """One status check before deferring; a transient error just leaves it to the trigger."""
        if task.is_terminal:
            return task
        try:
            return self.hook.get_task(task.task_id)
        except GPTProtoError as exc:
            if not is_transient_poll_error(exc):
                raise
            self.log.warning("Checking GPTProto task %s failed (%s); the trigger will", task.task_id, exc)
            return task

    def _wait_in_worker(
        self, task: GenerationTask, deadline: float, context: Context, state: TaskState
    ) -> GenerateResult:
        if not task.is_terminal:
            try:
                # deliver() judges the outcome (content policy, retries), so no raise here.
                task = self.hook.wait_for_task(
                    task.task_id, self.poll_interval, deadline=deadline, raise_on_failure=False
                )
            except GPTProtoTimeoutError:
                self.hook.cancel_after_timeout(task.task_id)
                raise
        return self._finish(self.hook.video_size, task, context, state)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None
    ) -> GenerateResult | list[GenerateResult]:
        """Resume after the trigger fired: one event with the final task, a timeout or an error
        (with takes, the batch trigger's event for them all; their ids from this try's XCom)."""
        if self.takes > 1:
            ti = context["ti"]
            self._take_ids = list(ti.xcom_pull(task_ids=ti.task_id, key=TAKE_IDS_XCOM_KEY) or [])
            return self._finish_takes(parse_batch_event(event), self._take_ids, context)
        outcome = parse_event(event)
        status, task, message, _ = outcome
        task_id = (task.task_id if task else None) or str((event or {}).get("task_id"))
        self._remote_task_id = task_id
        if status == "timeout":
            self.hook.cancel_after_timeout(task_id)
            raise GPTProtoTimeoutError(f"{message} (timeout {self.timeout:.0f} s)")
        if status == "error" or task is None:
            raise GPTProtoError(message)
        return self._finish(outcome.video_size, task, context, TaskState(context))

    def _reattach_or_create(
        self, hook: GPTProtoHook, state: TaskState, request: VideoGenerationRequest, context: Context
    ) -> tuple[GenerationTask, float]:
        record = state.load()
        if record is not None:
            try:
                task = hook.get_task(record.task_id)
            except GPTProtoNotFoundError:
                task = None
            if task is not None and (not task.is_terminal or task.status is TaskStatus.SUCCEEDED):
                self.log.info(
                    "Reattaching to GPTProto task %s from an earlier try: it %s",
                    task.task_id,
                    task.status.phrase,
                )
                announce(context["ti"], task.task_id)
                return task, record.deadline or time.time() + self.timeout
            self.log.info(
                "GPTProto task %s from an earlier try %s; submitting a new one",
                record.task_id,
                task.status.phrase if task else "is gone",
            )
        else:
            self._check_interrupted_create(hook, state)
        state.mark_create_started(request.model)
        try:
            task = hook.create_task(request)
        except GPTProtoTaskMayExistError:
            raise  # keep the marker: the next try must reconcile before creating
        except GPTProtoError:
            state.clear()  # provably not created (the hook resends nothing ambiguous)
            raise
        deadline = time.time() + self.timeout
        state.save(RemoteTaskRecord(task.task_id, deadline))
        announce(context["ti"], task.task_id)
        self.log.info("Created GPTProto task %s (model %s)", task.task_id, request.model)
        return task, deadline

    def _check_interrupted_create(self, hook: GPTProtoHook, state: TaskState) -> None:
        """An earlier try started a create but never recorded its id: refuse to pay twice blindly,
        looking once the lost request must have finished (its request timeout plus a margin)."""
        started = state.create_started()
        if started is None:
            return
        lost = LostCreate(started[0], started[1] or None)
        settle = lost.settle_seconds(hook.settings.timeout, time.time())
        if settle > 0:
            self.log.info("An earlier try's create may still be processed; checking in %.0f s", settle)
            time.sleep(settle)
        try:
            found = reconcile(lost, hook.find_tasks_created_since(lost.since, model=lost.model))
        except GPTProtoListUnavailableError as exc:
            found = reconcile(lost, None, unreadable=str(exc))
        if found.landing is Landing.UNKNOWN:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(lost.sent_at))
            raise AirflowFailException(
                "An earlier try was interrupted while creating a GPTProto task, and this API has no list "
                f"endpoint ({found.reason}), so the provider cannot verify whether a paid task was "
                f"created. Not creating another. Look in your GPTProto account for a task of model "
                f"{lost.model or ''!r} created around {when}: if there is one, wait for it with "
                "GPTProtoTaskSensor or download it with GPTProtoDownloadVideoOperator(gptproto_task_id="
                f"...); to submit anew instead, delete this task's state store key {state.key!r} (or "
                "clear the task in a new DAG run)."
            )
        if found.landing is Landing.LANDED:
            raise AirflowFailException(
                "An earlier try was interrupted while creating a GPTProto task, and a task may have been "
                f"created: {list(found.candidates[:10])}. Not creating another. Check them, then "
                f"delete this task's state store key {state.key!r} (or clear the task in a new "
                "DAG run) to resubmit."
            )
        self.log.info("An earlier try's create left no task on the server; creating now")

    def _finish(
        self,
        video_size: Callable[[str], int | None],
        task: GenerationTask,
        context: Context,
        state: TaskState,
    ) -> GenerateResult:
        request = self.build_request(context)
        result = deliver(
            video_size,
            task.with_seed(request.seed),  # the seed sent, when the reply reports none
            context["ti"],
            self.log,
            retry_on_content_policy=self.retry_on_content_policy,
            id_published=True,  # by _reattach_or_create, in this try (a deferral keeps XComs)
        )
        self._take(result, request, 1)
        state.clear()
        self._result = result
        return result

    # ------------------------------------------------------------------------------ takes > 1
    def _take_states(self, context: Context) -> list[TaskState]:
        return [TaskState(context, f"{TASK_KEY}.take-{k}") for k in range(1, self.takes + 1)]

    def _execute_takes(self, context: Context) -> list[GenerateResult] | None:
        """Every take reattached or created in order (each recorded as a single take is), then one
        wait for them all: the batch trigger when deferrable, its plan in the worker otherwise."""
        requests = self.build_requests(context)  # rendered values, validated before any request
        hook, tasks, self._take_ids = self.hook, [], []
        watch: dict[str, float] = {}  # remote id -> its deadline, in take order
        for request, state in zip(requests, self._take_states(context), strict=True):
            task, deadline = self._reattach_or_create(hook, state, request, context)
            tasks.append(task)
            watch[task.task_id] = deadline
            self._take_ids.append(task.task_id)  # for on_kill, as soon as it exists
        context["ti"].xcom_push(key=TAKE_IDS_XCOM_KEY, value=self._take_ids)
        if not self.wait_for_completion:
            for state in self._take_states(context):
                state.clear()
            return [
                self._take(GenerateResult(kind="generate", **t.to_dict()), None, k)
                for k, t in enumerate(tasks, 1)
            ]
        wait = (watch, max(watch.values()), len(watch), self.timeout)  # all of them, by the last deadline
        if self.deferrable:
            self._defer_batch(*wait)
        return self._finish_takes(self._poll_batch(*wait), self._take_ids, context)

    def _finish_takes(self, outcome: BatchOutcome, ids: list[str], context: Context) -> list[GenerateResult]:
        """Every take's result in take order, once all succeeded; a take that did not fails the
        try, whose retry reattaches the takes that did and creates the others anew."""
        if outcome.status == "error":
            raise GPTProtoError(outcome.message)
        late = [i for i in ids if i not in outcome.tasks]
        for remote_id in late:
            self.hook.cancel_after_timeout(remote_id)
        if late:
            takes = [ids.index(i) + 1 for i in late]
            raise GPTProtoTimeoutError(
                f"Takes {takes} (GPTProto tasks {late}) did not finish by their deadline (timeout "
                f"{self.timeout:.0f} s) or are unknown to the server"
            )
        results = []
        for take, (request, remote_id) in enumerate(zip(self.build_requests(context), ids, strict=True), 1):
            task = outcome.tasks[remote_id].with_seed(request.seed)  # the seed sent, when the reply has none
            result = deliver(
                self.hook.video_size,
                task,
                context["ti"],
                self.log,
                retry_on_content_policy=self.retry_on_content_policy,
                id_published=True,
            )
            results.append(self._take(result, request, take))
        for state in self._take_states(context):
            state.clear()
        self._result = results[0]
        return results

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Reference image URLs as inputs; the ``gptproto`` run facet (see utils/openlineage.py)."""
        from airflow_provider_gptproto.utils.openlineage import generate_lineage

        return generate_lineage(self._result, self.build_request())

    def on_kill(self) -> None:
        """Best effort, bounded: a killed task should not keep paying for its video."""
        ids = self._take_ids or ([self._remote_task_id] if self._remote_task_id else [])
        if self.cancel_on_kill and ids:
            _cancel_after_kill(self.gptproto_conn_id, ids, self.log)


def _cancel_after_kill(gptproto_conn_id: str, remote_ids: Iterable[str], log: Logger) -> None:
    """An operator's ``on_kill``: cancel ``remote_ids``, bounded and best effort, with its own hook
    (``on_kill`` runs beside ``execute``, whose session is not thread-safe)."""
    hook = GPTProtoHook(gptproto_conn_id, timeout=KILL_CANCEL_TIMEOUT_SECONDS, retry_limit=1)
    try:
        for remote_id in remote_ids:
            try:
                hook.cancel_task(remote_id)
                log.info("Cancelled GPTProto task %s on kill", remote_id)
            except GPTProtoError as exc:
                log.warning("Could not cancel GPTProto task %s on kill: %s", remote_id, exc)
    finally:
        hook.close()


class GPTProtoDownloadVideoOperator(GPTProtoBaseOperator):
    """Land a finished video in storage and announce it as an asset event.

    Outlets default to the ``gptproto_videos`` asset; the event's extra and the return value are a
    :class:`~airflow_provider_gptproto.models.results.DownloadResult`. The destination is checked
    at parse time as far as its static part shows it, in full before any request.

    :param destination: where to write (templated): a path or URL ``ObjectStoragePath`` understands
        (``/data/videos/``, ``file:///data/v.mp4``, ``s3://<conn_id>@<bucket>/<key>``, ...). One ending
        in ``/`` (or an existing directory) gets ``<task id>.mp4`` appended; missing folders are made.
    :param gptproto_task_id: remote task id (templated), e.g. the generate operator's
        ``gptproto_task_id`` XCom. Default None; this or ``gptproto_task`` is required.
    :param gptproto_task: the generate operator's return value (``generate.output``, templated);
        its request's fields go into the asset event. Default None.
    :param gptproto_conn_id: the GPTProto connection (templated). Default ``"gptproto_default"``.
    :param max_bytes: refuse a video larger than this many bytes. Default None: the connection's
        ``max_bytes`` extra, else 4 GiB.
    :param if_exists: when the file exists: ``"overwrite"`` (atomically, so a retry repeats
        cleanly), ``"skip"`` (keep and report it) or ``"fail"``. Default ``"overwrite"``.
    :param check_storage_connection: when the DAG is parsed, look up the storage connection a static
        destination names. Default True; set False if that connection exists only on workers.
    :param kwargs: any other ``BaseOperator`` argument (``task_id``, ``retries``, ``outlets``, ...).
    """

    template_fields: Sequence[str] = ("gptproto_task_id", "gptproto_task", "destination", "gptproto_conn_id")
    operator_extra_links = (GPTProtoVideoLink(),)

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """Mapped downloads publish the asset too.

        ``partial()`` records ``outlets=[]`` for every mapped task, so the default in ``__init__``
        never applied: no asset event at run time and no outlet in the serialized DAG. For the same
        reason the parse-time checks of ``__init__`` are made here for the arguments given.
        """
        kwargs.setdefault("outlets", [GPTPROTO_VIDEOS])
        cls._check_static_config(kwargs)
        return super().partial(**kwargs)

    @staticmethod
    def _check_static_config(kwargs: dict[str, Any]) -> None:
        """Checks that fail at parse time, before an upstream generate task pays for a video."""
        if "if_exists" in kwargs:
            check_if_exists(kwargs["if_exists"])
        if "destination" in kwargs:
            destination = kwargs["destination"]
            check_destination(
                destination,
                templated=not is_static({"destination": destination}),
                check_connection=kwargs.get("check_storage_connection", True),
            )

    def __init__(
        self,
        *,
        destination: str,
        gptproto_task_id: str | None = None,
        gptproto_task: dict[str, Any] | None = None,
        gptproto_conn_id: str = GPTProtoHook.default_conn_name,
        max_bytes: int | None = None,
        if_exists: str = "overwrite",
        check_storage_connection: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [GPTPROTO_VIDEOS])
        super().__init__(gptproto_conn_id=gptproto_conn_id, **kwargs)
        if gptproto_task_id is None and gptproto_task is None:
            raise ValueError("GPTProtoDownloadVideoOperator needs gptproto_task_id or gptproto_task")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive number of bytes, got {max_bytes!r}")
        self.destination = destination
        self.gptproto_task_id = gptproto_task_id
        self.gptproto_task = gptproto_task
        self.max_bytes = max_bytes
        self.if_exists = if_exists
        self.check_storage_connection = check_storage_connection
        self._check_static_config(
            {
                "destination": destination,
                "if_exists": if_exists,
                "check_storage_connection": check_storage_connection,
            }
        )
        self._saved: DownloadResult | None = None  # what was stored, for OpenLineage

    def execute(self, context: Context) -> DownloadResult:
        # Rendered: everything is known now, and nothing has been requested yet.
        check_destination(self.destination, templated=False, check_connection=self.check_storage_connection)
        task_id = self._task_id()
        hook = self.hook
        task = hook.get_task(task_id)
        task.raise_for_status()
        announce(context["ti"], None, task.video_url or "")
        destination = self._destination(task_id)
        video = hook.download_task_video(
            task, destination, max_bytes=self.max_bytes, if_exists=self.if_exists
        )
        request = (self.gptproto_task or {}).get("request") or {}
        metadata: DownloadResult = {
            "kind": "download",
            "task_id": task_id,
            "prompt": request.get("prompt"),
            "model": task.model or request.get("model"),
            "seed": task.seed if task.seed is not None else request.get("seed"),
            "duration": request.get("duration"),
            "dimension": request.get("dimension") or request.get("ratio"),
            "sha256": video.sha256,
            "bytes": video.bytes,
            "uri": video.uri,
            "usage": task.usage,
        }
        if poster := store_poster(video.uri, self.log).get(POSTER_KEY):  # when PyAV can make one
            metadata["poster_uri"] = poster
        self._saved = metadata
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra.update(cast("dict[str, Any]", metadata))  # JSON-safe
        self.log.info(
            "Saved GPTProto video %s to %s (%d bytes, sha256 %s)",
            task_id,
            video.uri,
            video.bytes,
            video.sha256,
        )
        return metadata

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """The stored video as the output dataset; the ``gptproto`` run facet."""
        from airflow_provider_gptproto.utils.openlineage import download_lineage

        return download_lineage(self._saved, (self.gptproto_task or {}).get("request"))

    def _task_id(self) -> str:
        task_id = self.gptproto_task_id or (self.gptproto_task or {}).get("task_id")
        if not isinstance(task_id, str) or not task_id.strip():
            raise GPTProtoError(f"gptproto_task_id must be a non-empty task id, got {task_id!r}")
        return task_id.strip()

    def _destination(self, task_id: str) -> ObjectStoragePath:
        path = ObjectStoragePath(self.destination)
        try:
            if str(self.destination).endswith("/") or path.is_dir():
                path = path / f"{task_id}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GPTProtoVideoDownloadError(
                f"Cannot create the folder of destination {path}: {exc.strerror or type(exc).__name__}"
            ) from exc
        return path
