"""GPTProtoBatchGenerateVideosOperator: thousands of videos in one Airflow task (docs/batch.md).

The worker creates and downloads; one trigger waits for every in-flight task; the journal
(``utils/batch_journal``) lets retries and killed workers resume without paying twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.common.compat.sdk import AirflowFailException, ObjectStoragePath

from airflow_provider_gptproto.assets import GPTPROTO_VIDEOS
from airflow_provider_gptproto.exceptions import (
    GPTProtoAuthError,
    GPTProtoBadRequestError,
    GPTProtoContentPolicyError,
    GPTProtoError,
    GPTProtoNotFoundError,
    GPTProtoRequestError,
    GPTProtoTaskMayExistError,
    GPTProtoVideoDownloadError,
)
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.hooks.mixin import positive_seconds
from airflow_provider_gptproto.models import GenerationTask
from airflow_provider_gptproto.models import batch_plan as plan
from airflow_provider_gptproto.models.batch import (
    BatchItem,
    build_items,
    expand_takes,
    failure_budget,
    fingerprint,
    rows_from_text,
)
from airflow_provider_gptproto.models.budget import Budget, dry_run_plan, item_cost, spent_by, tokens
from airflow_provider_gptproto.models.reconcile import Landing, LostCreate, reconcile
from airflow_provider_gptproto.models.request import VideoGenerationRequest, stable_seed
from airflow_provider_gptproto.models.results import (
    BatchSummary,
    ManifestRow,
    PlanResult,
    Spent,
    StoryboardResult,
)
from airflow_provider_gptproto.operators.base import GPTProtoBaseOperator
from airflow_provider_gptproto.operators.gptproto import _cancel_after_kill
from airflow_provider_gptproto.storage import sweep_stale_parts
from airflow_provider_gptproto.triggers.batch import BatchOutcome, parse_batch_event
from airflow_provider_gptproto.utils.batch_journal import (
    MANIFEST_NAME,
    RETRY_MANIFEST_NAME,
    BatchJournal,
    journal_store,
    manifest_entry,
    manifest_row,
    read_manifest,
    write_manifest,
)
from airflow_provider_gptproto.utils.destination import check_destination, is_static, same_location

if TYPE_CHECKING:
    from airflow.sdk import Context

SHARED_FIELDS = (
    "model",
    "duration",
    "dimension",
    "seed",
    "loop",
    "logo",
    "ratio",
    "resolution",
    "frames",
    "framespersecond",
    "camera_fixed",
    "watermark",
    "service_tier",
    "execution_expires_after",
    "generate_audio",
    "draft",
)
DEFAULT_ITEM_TIMEOUT = timedelta(hours=2)
# What a batch, a storyboard built on it (one per take), or a dry run returns.
BatchResult = BatchSummary | StoryboardResult | list[StoryboardResult] | PlanResult
DEFAULT_DEADLINE = timedelta(hours=24)
# Newest tasks listed when reconciling a lost create (the list endpoint's largest page).
RECONCILE_PAGE_SIZE = 500


class GPTProtoBatchGenerateVideosOperator(GPTProtoBaseOperator):
    """Generate many videos in one task: bounded concurrency, a durable journal, a results manifest.

    Give exactly one of ``prompts``, ``requests_file`` or ``retry_failed_from``. Every item is
    validated before anything is paid for; an error names the item's index (and line) and the field.

    :param prompts: list of prompt strings, or of dicts of request fields (templated; an XComArg
        works). A dict may carry ``key``, the item's output name (default: its zero-padded index).
    :param requests_file: ObjectStoragePath (or URI) of a ``.jsonl`` or ``.csv`` file, one item per
        line or row, whose columns are request fields (and optionally ``key``). Templated.
    :param retry_failed_from: path of an earlier batch's ``manifest.jsonl``: re-run only its failed
        items that a resume would retry (docs/batch.md, "Re-running the failures"). Templated.
    :param destination: folder (ObjectStoragePath or URI, templated) for the videos and ``manifest.jsonl``.
    :param model: shared request field; an item's own value wins. Default None.
    :param duration: shared request field; an item's own value wins. Default None.
    :param dimension: shared request field; an item's own value wins. Default None.
    :param seed: shared request field; an item's own value wins. Default None.
    :param loop: shared request field; an item's own value wins. Default None.
    :param logo: shared request field; an item's own value wins. Default None.
    :param ratio: shared request field; an item's own value wins. Default None.
    :param resolution: shared request field; an item's own value wins. Default None.
    :param frames: shared request field; an item's own value wins. Default None.
    :param framespersecond: shared request field; an item's own value wins. Default None.
    :param camera_fixed: shared request field; an item's own value wins. Default None.
    :param watermark: shared request field; an item's own value wins. Default None.
    :param service_tier: shared request field; an item's own value wins. Default None.
    :param execution_expires_after: shared request field; an item's own value wins. Default None;
        with ``service_tier="flex"``, ``timeout`` capped by what is left of ``deadline``.
    :param generate_audio: shared request field; an item's own value wins. Default None.
    :param draft: shared request field; an item's own value wins. Default None.
    :param takes: videos per item (default 1), each with its own seed and key ``<key>-take-<k>``
        (docs/batch.md, "Takes"). Not with ``retry_failed_from`` (its rows already are takes).
    :param seeds: every take's seed, a list of ``takes`` distinct integers (instead of ``seed``);
        an item's own ``seed`` still wins. Default None.
    :param retry_policy_failures: also retry content-policy rejections (on a new try and with
        ``retry_failed_from``). Default False: the same prompt is usually rejected again.
    :param max_in_flight: most remote tasks running at once (default 10).
    :param max_failed_items: failed items tolerated before the Airflow task fails, as a count
        (int) or a fraction of the batch (float, 0-1). Default 0. Decided once every item ended.
    :param poll_interval: seconds between status reads (default 10).
    :param timeout: per-item budget from its create (default 2 h); then it is cancelled and failed.
    :param deadline: budget of the whole batch from its first start, across retries (default 24 h).
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param cancel_on_kill: cancel in-flight remote tasks when the task is killed (default True).
    :param max_wait_ready: longest a finished video waits in the triggerer for others (default 300 s).
    :param max_videos: most creates that may be paid (docs/batch.md, "Spending limits"). Default None.
    :param max_video_seconds: most seconds of video requested by those creates. Default None.
    :param max_usage_tokens: most usage tokens, as reported plus an estimate for what is in flight
        (passed by at most ``max_in_flight`` items). Default None.
    :param on_budget: once a limit stopped the creating (the items left are ``skipped``): ``"fail"``
        (default) fails the task after writing the manifest, ``"succeed"`` returns the summary.
    :param dry_run: validate everything, log the plan and return a
        :class:`~airflow_provider_gptproto.models.results.PlanResult`; create nothing. Default False.
    :param gptproto_conn_id: the connection (default ``gptproto_default``).

    Outlets default to the ``gptproto_videos`` asset, with **one event per batch** (the manifest
    lists every video). Returns a
    :class:`~airflow_provider_gptproto.models.results.BatchSummary`; the manifest's rows are
    :class:`~airflow_provider_gptproto.models.results.ManifestRow`. A new try resumes the journal
    without paying twice; clearing the task regenerates (docs/batch.md).
    """

    template_fields: Sequence[str] = (
        "prompts",
        "requests_file",
        "retry_failed_from",
        "destination",
        *SHARED_FIELDS,
        "gptproto_conn_id",
    )
    template_fields_renderers = {"prompts": "json"}
    ui_color = "#e8f0fe"

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        if not kwargs.get("dry_run"):  # a dry run announces no videos
            kwargs.setdefault("outlets", [GPTPROTO_VIDEOS])
        return super().partial(**kwargs)

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        prompts: list[str | dict[str, Any]] | None = None,
        requests_file: str | ObjectStoragePath | None = None,
        retry_failed_from: str | ObjectStoragePath | None = None,
        model: str | None = None,
        duration: str | int | None = None,
        dimension: str | None = None,
        seed: int | None = None,
        loop: bool | None = None,
        logo: dict[str, Any] | None = None,
        ratio: str | None = None,
        resolution: str | None = None,
        frames: int | None = None,
        framespersecond: int | None = None,
        camera_fixed: bool | None = None,
        watermark: bool | None = None,
        service_tier: str | None = None,
        execution_expires_after: int | None = None,
        generate_audio: bool | None = None,
        draft: bool | None = None,
        takes: int = 1,
        seeds: list[int] | None = None,
        retry_policy_failures: bool = False,
        max_in_flight: int = 10,
        max_failed_items: int | float = 0,
        poll_interval: float = 10.0,
        timeout: timedelta | float = DEFAULT_ITEM_TIMEOUT,
        deadline: timedelta | float = DEFAULT_DEADLINE,
        deferrable: bool | None = None,
        cancel_on_kill: bool = True,
        max_wait_ready: float = 300.0,
        max_videos: int | None = None,
        max_video_seconds: float | None = None,
        max_usage_tokens: int | None = None,
        on_budget: str = "fail",
        dry_run: bool = False,
        gptproto_conn_id: str = GPTProtoHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        self.budget = Budget.checked(
            on_budget,
            max_videos=max_videos,
            max_video_seconds=max_video_seconds,
            max_usage_tokens=max_usage_tokens,
        )
        if not isinstance(dry_run, bool):
            raise GPTProtoRequestError(f"dry_run must be True or False, got {dry_run!r}", field="dry_run")
        if not dry_run:  # a dry run announces no videos
            kwargs.setdefault("outlets", [GPTPROTO_VIDEOS])
        super().__init__(
            gptproto_conn_id=gptproto_conn_id,
            deferrable=deferrable,
            poll_interval=poll_interval,
            timeout=timeout,
            **kwargs,
        )
        sources = [s for s in (prompts, requests_file, retry_failed_from) if s is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of prompts, requests_file or retry_failed_from")
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be a positive integer, got {max_in_flight!r}")
        failure_budget(max_failed_items, 1)  # type and range, at parse time
        plan.check_takes(takes, seeds, seed)
        if takes > 1 and retry_failed_from is not None:
            raise GPTProtoRequestError(
                "takes applies to new items, not retry_failed_from (its rows already are takes)",
                field="takes",
            )
        # The folder's filesystem and storage connection, as far as a template lets us see them.
        check_destination(destination, templated=not is_static({"destination": destination}))
        self.prompts = prompts
        self.requests_file = requests_file
        self.retry_failed_from = retry_failed_from
        self.destination = destination
        given = locals()
        for name in SHARED_FIELDS:  # each shared request field under its own name, templated
            setattr(self, name, given[name])
        self.takes = takes
        self.seeds = seeds
        self._identity: tuple[Any, ...] = ()  # the task instance's, for the seeds drawn per take
        self.retry_policy_failures = retry_policy_failures
        self.max_in_flight = max_in_flight
        self.max_failed_items = max_failed_items
        self.deadline = positive_seconds(deadline, "deadline")
        self.cancel_on_kill = cancel_on_kill
        self.max_wait_ready = float(max_wait_ready)
        self.on_budget = on_budget
        self.plan_only = dry_run  # BaseOperator has a dry_run() method
        self._in_flight: dict[str, int] = {}

    # ------------------------------------------------------------------------------ entry points
    def execute(self, context: Context) -> BatchResult | None:
        return self._phase(context, None, new_try=True)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> BatchResult | None:
        """A worker phase after the trigger fired: record and download what finished, refill, wait."""
        return self._phase(context, parse_batch_event(event), new_try=False)

    # ------------------------------------------------------------------------------ one worker phase
    def _phase(self, context: Context, outcome: BatchOutcome | None, *, new_try: bool) -> BatchResult | None:
        """Perform what the plan (``models/batch_plan``) decides, and report the outcomes to the journal."""
        self._identity = tuple(
            getattr(context["ti"], n, None) for n in ("dag_id", "run_id", "task_id", "map_index")
        )
        items = self.load_items(validate=new_try)  # later phases: the journal's fingerprint vouches
        if self.plan_only:
            return self._dry_run(items)
        folder = self._folder()
        digest = self._fingerprint(items)
        scope = f"retry-{digest}" if self.retry_failed_from is not None else None
        journal = BatchJournal.open(
            journal_store(context, folder, scope), digest, len(items), time.time() + self.deadline
        )
        costs = tuple(item_cost(item.request) for item in items)
        batch = replace(self._plan(len(items), journal.deadline), budget=self.budget, costs=costs)
        if new_try and journal.entries:
            retried = plan.resume(journal.entries, self.retry_policy_failures, time.time(), carry=True)
            self.log.info("Resuming batch: %s; %d failed items retried", journal.describe(), len(retried))
            journal.update(retried)
        elif new_try and self.retry_failed_from is not None:
            rows = {row.get("key"): manifest_entry(row) for row in self._earlier_rows()}
            earlier = {item.index: rows[item.key] for item in items if item.key in rows}
            journal.update(plan.resume(earlier, self.retry_policy_failures, time.time()))
            journal.flush()
        if outcome is not None:
            self._observe(journal, items, folder, batch, outcome)
        while True:
            actions = batch.decide(journal.entries, time.time())
            if actions.reconcile:
                self._reconcile(journal)
                continue
            self._act(journal, items, folder, actions)
            self._in_flight = plan.in_flight(journal.entries)
            if batch.retries(journal.entries, time.time()):
                continue  # a create refused just now, with retries left
            step = batch.wait_or_finish(journal.entries)
            if isinstance(step, plan.Finish):
                return self._finish(context, journal, items, folder, step)
            if self.deferrable:
                self.log.info(
                    "Deferring: %s; waking when %d have finished", journal.describe(), step.min_finished
                )
                self._defer_batch(step.watch, journal.deadline, step.min_finished, self.max_wait_ready)
            # Not deferrable: back to work as soon as one task ended.
            self._observe(journal, items, folder, batch, self._poll_batch(step.watch, journal.deadline, 1, 0))

    def _act(
        self, journal: BatchJournal, items: list[BatchItem], folder: ObjectStoragePath, todo: plan.Actions
    ) -> None:
        """Perform what the plan decided, reporting each outcome to the journal; then make it durable."""
        for rid in todo.cancel:
            self._cancel(rid)
        journal.update(todo.changes)
        if todo.download:
            sweep_stale_parts(folder)  # once per phase, not once per video (each lists the folder)
        for index, task in todo.download:
            self._download(journal, items[index], task, folder)
        self._create(journal, [items[i] for i in todo.create])
        journal.flush()

    def _observe(
        self,
        journal: BatchJournal,
        items: list[BatchItem],
        folder: ObjectStoragePath,
        batch: plan.BatchPlan,
        outcome: BatchOutcome,
    ) -> None:
        """Act on a wait's outcome (the trigger's or the worker's own); a failed wait fails the try."""
        if outcome.status == "error":
            journal.flush()
            raise GPTProtoError(outcome.message)
        observed = batch.observe(journal.entries, outcome.tasks, outcome.timed_out, outcome.missing)
        self._act(journal, items, folder, observed)

    # ------------------------------------------------------------------------------ extension points
    def _plan(self, total: int, deadline: float) -> plan.BatchPlan:
        return plan.BatchPlan(
            total, self.max_in_flight, self.timeout, deadline, self.max_failed_items, takes=self.takes
        )

    def _with_takes(self, items: list[BatchItem]) -> list[BatchItem]:
        """Each item as its ``takes``, each take with its seed (see ``takes``)."""

        def seeds_of(item: BatchItem) -> list[int]:
            first = item.params.get("seed")
            if first is None or first == -1:
                first = stable_seed(*self._identity, item.index)
                return plan.take_seeds(first, self.takes, self.seeds)
            return plan.take_seeds(first, self.takes)

        return expand_takes(items, self.takes, seeds_of)

    def _fingerprint(self, items: list[BatchItem]) -> str:
        return fingerprint(items)

    def _request(self, journal: BatchJournal, item: BatchItem) -> VideoGenerationRequest:
        """What an item's create sends (a storyboard adds the previous shot's last frame)."""
        return item.request

    # ------------------------------------------------------------------------------ creating
    def _create(self, journal: BatchJournal, wave: list[BatchItem]) -> None:
        """Create ``wave`` in order: each intent is durable before its create, each id after it."""
        created = 0
        intent_recorded = False
        for position, item in enumerate(wave):
            if not intent_recorded:
                journal.begin_create(item.index)
            intent_recorded = False
            try:
                wait = min(self.timeout, journal.deadline - time.time())  # flex: expire with the wait
                request = self._request(journal, item).expiring_within(wait)
                task = self.hook.create_task(request)
            except GPTProtoTaskMayExistError as exc:
                self.log.warning("Item %d (%s): %s", item.index, item.key, exc)
                break  # intent kept: reconciled once the lost request must have settled
            except (GPTProtoBadRequestError, GPTProtoContentPolicyError) as exc:
                kind = plan.POLICY_KIND if isinstance(exc, GPTProtoContentPolicyError) else "create"
                journal.failed(item.index, kind, f"create refused: {exc}")
                continue
            except GPTProtoAuthError:
                journal.abandon_create(item.index)
                journal.flush()
                raise
            except GPTProtoError as exc:  # the hook resends nothing ambiguous: provably not created
                journal.abandon_create(item.index)
                self.log.warning(
                    "Creating item %d failed (%s); trying again in the next phase", item.index, exc
                )
                break
            following = wave[position + 1].index if position + 1 < len(wave) else None
            journal.created(
                item.index, task.task_id, then_begin=following, seed=task.with_seed(request.seed).seed
            )
            intent_recorded = following is not None
            created += 1
        if created:
            self.log.info("Created %d GPTProto tasks: %s", created, journal.describe())

    def _reconcile(self, journal: BatchJournal) -> None:
        """Creates whose reply was lost (intent, no id): failed as ``ambiguous`` if tasks unknown to the
        journal were listed since (it may have been paid), else back to be created."""
        intents = list(journal.with_state(plan.ItemState.CREATING))
        if not intents:
            return
        lost = LostCreate(min(e.at or 0.0 for _, e in intents))
        wait = lost.settle_seconds(self.hook.settings.timeout, time.time())
        if wait > 0:
            self.log.info("%d creates may still be processed; checking in %.0f s", len(intents), wait)
            time.sleep(wait)
        try:
            listed = self.hook.list_tasks(page_size=RECONCILE_PAGE_SIZE).items
            found = reconcile(lost, listed, known=journal.known_ids())
        except (GPTProtoNotFoundError, GPTProtoBadRequestError):
            found = reconcile(lost, None, unreadable="(the server offers no task list to check)")
        unknown = sorted(found.candidates) or [found.reason]
        for index, _ in intents:
            if found.landing is Landing.NOT_LANDED:
                journal.abandon_create(index)
            else:
                journal.failed(
                    index,
                    "ambiguous",
                    f"the create's reply was lost and tasks unknown to this batch were created since: "
                    f"{unknown[:10]}; not resubmitted so nothing is paid twice",
                )
        self.log.warning("Reconciled %d lost creates (unknown tasks since: %s)", len(intents), unknown[:10])

    def _cancel(self, remote_id: str) -> None:
        try:
            self.hook.cancel_task(remote_id)
        except GPTProtoError as exc:
            self.log.warning("GPTProto task %s could not be cancelled (%s)", remote_id, exc)

    # ------------------------------------------------------------------------------ results
    def _download(
        self, journal: BatchJournal, item: BatchItem, task: GenerationTask, folder: ObjectStoragePath
    ) -> None:
        try:
            video = self.hook.download_task_video(task, folder / f"{item.key}.mp4", sweep_stale=False)
        except GPTProtoVideoDownloadError as exc:
            journal.failed(
                item.index, "download", str(exc), status="download_failed", usage=task.usage, seed=task.seed
            )
        else:
            journal.done(item.index, video.bytes, video.sha256, task.seed, task.usage)

    def _finish(
        self,
        context: Context,
        journal: BatchJournal,
        items: list[BatchItem],
        folder: ObjectStoragePath,
        finish: plan.Finish,
    ) -> BatchResult:
        rows = [manifest_row(item, journal.entry(item.index), folder) for item in items]
        failed, skipped = len(finish.failed), len(finish.skipped)
        within = finish.error is None and not (finish.skipped and self.on_budget == "fail")
        manifest = write_manifest(folder, *self._manifest(rows, folder, within_budget=within))
        summary: BatchSummary = {
            "kind": "batch",
            "total": len(rows),
            "succeeded": len(rows) - failed - skipped,
            "failed": failed,
            "skipped": skipped,
            "manifest": manifest,
            "destination": str(folder),
            "spent": self._spent(journal, items),
            "budget_stopped": bool(skipped),
        }
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra.update(cast("dict[str, Any]", summary))
        self.log.info(
            "Batch finished: %d succeeded, %d failed, %d skipped by a spending limit; spent %s; manifest %s",
            summary["succeeded"],
            failed,
            skipped,
            summary["spent"],
            manifest,
        )
        if finish.error:
            raise GPTProtoError(f"{finish.error}; see {manifest}. A retry re-runs the failed items only.")
        self._stopped_by_budget(journal, finish, manifest)
        journal.delete()
        return summary

    def _spent(self, journal: BatchJournal, items: list[BatchItem]) -> Spent:
        return spent_by(journal.entries, [item_cost(item.request) for item in items])

    def _stopped_by_budget(self, journal: BatchJournal, finish: plan.Finish, manifest: str) -> None:
        """With ``on_budget="fail"``, fail once a limit stopped the creating (the journal is kept:
        with higher limits, clearing the task creates only the skipped items)."""
        reason = journal.entry(finish.skipped[0]).error if finish.skipped else None
        if reason:
            self.log.warning(
                "A spending limit stopped the creating: %d items %s", len(finish.skipped), reason
            )
        if reason and self.on_budget == "fail":
            journal.flush()
            raise AirflowFailException(
                f"A spending limit stopped the batch: {len(finish.skipped)} items {reason}; see {manifest} "
                "(on_budget='succeed' would succeed)"
            )

    def _dry_run(self, items: list[BatchItem]) -> PlanResult:
        """Validated (by ``load_items``): what the run would create, logged and returned; nothing sent."""
        known: dict[Any, int] = {}
        if self.retry_failed_from is not None:  # the earlier run's usage, by shape
            for row in self._earlier_rows():
                if row.get("status") == "succeeded" and tokens(row.get("usage")):
                    shape = item_cost(VideoGenerationRequest.build(**row["request"])).shape
                    known[shape] = max(known.get(shape, 0), tokens(row.get("usage")))
        result = dry_run_plan(self.budget, [item_cost(item.request) for item in items], known)
        self.log.info("Dry run, nothing created: %s", result)
        return result

    # ------------------------------------------------------------------------------ input
    def _earlier_rows(self) -> list[ManifestRow]:
        return read_manifest(ObjectStoragePath(str(self.retry_failed_from)))

    def _manifest(
        self, rows: list[ManifestRow], folder: ObjectStoragePath, within_budget: bool
    ) -> tuple[list[ManifestRow], str]:
        """The manifest to write, and its name: a retry never loses the record of the run it retries
        (docs/batch.md, "Re-running the failures"; until merged, ``manifest.retry.jsonl``)."""
        if self.retry_failed_from is None:
            return rows, MANIFEST_NAME
        earlier = self._earlier_rows()
        positions = {row.get("key"): row for row in earlier}
        for row in rows:
            first: ManifestRow | dict[str, Any] = positions.get(row["key"]) or {}
            row["index"], row["line"] = first.get("index", row["index"]), first.get("line", row["line"])
        source = ObjectStoragePath(str(self.retry_failed_from))
        if not same_location(source, folder / MANIFEST_NAME):
            return rows, MANIFEST_NAME  # written beside the earlier manifest, which stays as it was
        if not within_budget:
            return rows, RETRY_MANIFEST_NAME
        retried = {row["key"]: row for row in rows}
        merged = [retried.pop(row.get("key"), row) for row in earlier]
        (folder / RETRY_MANIFEST_NAME).unlink(missing_ok=True)  # an earlier try's, now merged
        return merged + list(retried.values()), MANIFEST_NAME

    def _folder(self) -> ObjectStoragePath:
        folder = ObjectStoragePath(self.destination)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def load_items(self, validate: bool = True) -> list[BatchItem]:
        """Every item, validated (nothing is sent before this returns) unless ``validate`` is False."""
        shared = {name: getattr(self, name) for name in SHARED_FIELDS}
        if self.prompts is not None:
            if not isinstance(self.prompts, (list, tuple)):
                raise GPTProtoRequestError(
                    f"prompts must be a list of strings or dicts, got {type(self.prompts).__name__}",
                    field="prompts",
                )
            return self._with_takes(build_items(((None, p) for p in self.prompts), shared, validate=validate))
        if self.requests_file is not None:
            path = ObjectStoragePath(self.requests_file)
            fmt = path.suffix.lower().lstrip(".")
            if fmt not in ("jsonl", "csv"):
                raise GPTProtoRequestError(
                    f"requests_file must end in .jsonl or .csv, got {path.name!r}", field="requests_file"
                )
            lines = rows_from_text(path.read_text(), fmt)
            return self._with_takes(build_items(lines, shared, source=str(path), validate=validate))
        path = ObjectStoragePath(str(self.retry_failed_from))
        failed = [r for r in read_manifest(path) if r.get("status") != "succeeded"]
        rows = [r for r in failed if plan.retry_target(r.get("error_kind"), self.retry_policy_failures)]
        policy = [
            r["key"]
            for r in failed
            if r.get("error_kind") == plan.POLICY_KIND and not self.retry_policy_failures
        ]
        kept = len(failed) - len(rows)
        if kept:
            self.log.info(
                "Not re-running %d of %d failed items of %s: %d content-policy rejections%s (pass "
                "retry_policy_failures=True to re-run them), %d ambiguous creates (a task may exist)",
                kept,
                len(failed),
                path,
                len(policy),
                f" ({policy[:10]})" if policy else "",
                kept - len(policy),
            )
        if not rows:
            raise AirflowFailException(
                f"{path} lists no failed items to re-run ({len(failed)} failed, {len(policy)} of them by "
                "content policy, which is re-run only with retry_policy_failures=True; the rest were "
                "ambiguous creates, which may have been paid)"
                if failed
                else f"{path} lists no failed items: nothing to re-run"
            )
        items = build_items(
            ((None, {"key": r["key"], **r["request"]}) for r in rows), shared, source=str(path)
        )
        return [  # each row's take as recorded (an older manifest's rows: one take each)
            replace(
                item,
                take=r.get("take", 1),
                takes=r.get("takes", 1),
                prompt_index=r.get("prompt_index", r["index"]),
            )
            for item, r in zip(items, rows, strict=True)
        ]

    def on_kill(self) -> None:
        """Sync path: cancel the in-flight remote tasks this worker knows of (bounded, best effort)."""
        if self.cancel_on_kill and self._in_flight:
            _cancel_after_kill(self.gptproto_conn_id, list(self._in_flight), self.log)


__all__ = ["MANIFEST_NAME", "GPTProtoBatchGenerateVideosOperator"]
