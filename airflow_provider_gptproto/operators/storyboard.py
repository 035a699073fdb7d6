"""GPTProtoStoryboardOperator: one video longer than a clip, from shots chained by their last frame.

The shots are a batch's items (``operators/batch``), chained by the plan (``BatchPlan.chain``) with
continuity ``"last_frame"``; ``storage/stitch`` joins them into ``storyboard.mp4`` (docs/storyboard.md).
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml
from airflow.providers.common.compat.sdk import AirflowFailException, ObjectStoragePath

from airflow_provider_gptproto.exceptions import (
    GPTProtoBadRequestError,
    GPTProtoError,
    GPTProtoNotFoundError,
    GPTProtoRequestError,
)
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.models import batch_plan as plan
from airflow_provider_gptproto.models.batch import BatchItem, build_items, fingerprint
from airflow_provider_gptproto.models.request import DEFAULT_MODEL, VideoGenerationRequest
from airflow_provider_gptproto.models.results import Spent, StoryboardResult
from airflow_provider_gptproto.operators.batch import (
    DEFAULT_DEADLINE,
    DEFAULT_ITEM_TIMEOUT,
    SHARED_FIELDS,
    GPTProtoBatchGenerateVideosOperator,
)
from airflow_provider_gptproto.storage import READ_BYTES, write_bytes_atomically, write_stream_atomically
from airflow_provider_gptproto.utils.batch_journal import BatchJournal, manifest_row, write_manifest

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_provider_gptproto.storage.stitch import StitchResult

CONTINUITY = ("last_frame", "none")
# The batch operator's arguments a storyboard passes on as they are (and the shared request fields).
BATCH_ARGUMENTS = (
    "destination",
    "takes",
    "seeds",
    "max_in_flight",
    "poll_interval",
    "timeout",
    "deadline",
    "deferrable",
    "cancel_on_kill",
    "gptproto_conn_id",
)
VIDEO_NAME = "storyboard.mp4"
STORYBOARD_NAME = "storyboard.json"
CHAPTERS_NAME = "chapters.vtt"


class GPTProtoStoryboardOperator(GPTProtoBatchGenerateVideosOperator):
    """Generate the shots of a storyboard and stitch them into one MP4.

    Give exactly one of ``shots`` or ``storyboard_file``; every shot is validated before anything is
    paid for. A shot that fails beyond ``shot_retries`` fails the storyboard; a new try resumes at it.

    :param shots: list of shots, each a prompt string or a dict of request fields (and ``key``). Templated.
    :param storyboard_file: ObjectStoragePath (or URI) of a YAML or JSON file: a list of shots, or
        ``{"shots": [...]}``. Templated.
    :param continuity: ``"last_frame"`` (default): each shot starts from the previous shot's last
        frame, so shots run one after another on an image-capable model; ``"none"``: independent
        shots, in parallel.
    :param destination: folder (ObjectStoragePath or URI) receiving the shots, ``manifest.jsonl``
        and the stitched ``storyboard.mp4`` (docs/storyboard.md). Templated. Required.
    :param model: shared request field; a shot's own value wins. Default None (the default model).
    :param duration: shared request field (seconds per shot); a shot's own value wins. Default None.
    :param dimension: shared request field; a shot's own value wins. Default None.
    :param seed: shared request field; a shot's own value wins. Default None.
    :param loop: shared request field; a shot's own value wins. Default None.
    :param logo: shared request field; a shot's own value wins. Default None.
    :param ratio: shared request field; a shot's own value wins. Default None.
    :param resolution: shared request field; a shot's own value wins. Default None.
    :param frames: shared request field; a shot's own value wins. Default None.
    :param framespersecond: shared request field; a shot's own value wins. Default None.
    :param camera_fixed: shared request field; a shot's own value wins. Default None.
    :param watermark: shared request field; a shot's own value wins. Default None.
    :param service_tier: shared request field; a shot's own value wins. Default None.
    :param execution_expires_after: shared request field; a shot's own value wins. Default None.
    :param generate_audio: shared request field; a shot's own value wins. Default None.
    :param draft: shared request field; a shot's own value wins. Default None.
    :param takes: whole storyboards to make (default 1), each with its own seeds and chain; with
        takes > 1 each is stitched to ``<destination>/take-<k>/`` and the result is a list.
    :param seeds: every take's seed, a list of ``takes`` distinct integers (instead of ``seed``).
    :param max_in_flight: most shots rendering at once (default 4); each chain renders one at a time.
    :param shot_retries: times a failed shot is tried again within the task, each with a new seed
        (default 0). Every attempt is paid.
    :param poll_interval: seconds between status reads (default 10).
    :param timeout: per-shot budget from its create (default 2 h).
    :param deadline: budget of the whole storyboard from its first start (default 24 h).
    :param deferrable: wait in the triggerer between shots (default ``[operators] default_deferrable``).
    :param cancel_on_kill: cancel the rendering shots when the task is killed (default True).
    :param gptproto_conn_id: the connection (default ``gptproto_default``).
    :param kwargs: the batch operator's spending limits and ``dry_run`` (``on_budget="succeed"``
        stitches the shots made), and any other ``BaseOperator`` argument.

    Outlets default to the ``gptproto_videos`` asset, one event for the stitched video (with takes,
    take 1's, listing every take's under ``take_uris``). Returns a
    :class:`~airflow_provider_gptproto.models.results.StoryboardResult` (with takes > 1, one per take).
    """

    template_fields: Sequence[str] = (
        "shots",
        "storyboard_file",
        "destination",
        *SHARED_FIELDS,
        "gptproto_conn_id",
    )
    template_fields_renderers = {"shots": "json"}

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        shots: list[str | dict[str, Any]] | None = None,
        storyboard_file: str | ObjectStoragePath | None = None,
        continuity: str = "last_frame",
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
        max_in_flight: int = 4,
        shot_retries: int = 0,
        poll_interval: float = 10.0,
        timeout: timedelta | float = DEFAULT_ITEM_TIMEOUT,
        deadline: timedelta | float = DEFAULT_DEADLINE,
        deferrable: bool | None = None,
        cancel_on_kill: bool = True,
        gptproto_conn_id: str = GPTProtoHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        if (shots is None) == (storyboard_file is None):
            raise GPTProtoRequestError("give exactly one of shots or storyboard_file", field="shots")
        if continuity not in CONTINUITY:
            raise GPTProtoRequestError(
                f"continuity must be one of {', '.join(map(repr, CONTINUITY))}, got {continuity!r}",
                field="continuity",
            )
        if isinstance(shot_retries, bool) or not isinstance(shot_retries, int) or shot_retries < 0:
            raise GPTProtoRequestError(
                f"shot_retries must be an integer >= 0, got {shot_retries!r}", field="shot_retries"
            )
        given = locals()
        super().__init__(
            prompts=shots,
            requests_file=storyboard_file,
            max_failed_items=0,
            **{name: given[name] for name in (*BATCH_ARGUMENTS, *SHARED_FIELDS)},
            **kwargs,
        )
        self.shots = shots
        self.storyboard_file = storyboard_file
        self.continuity = continuity
        self.shot_retries = shot_retries
        self._result: StoryboardResult | None = None  # for OpenLineage
        self._keys: list[str] = []  # the shots' file names, once loaded

    @property
    def _chained(self) -> bool:
        return self.continuity == "last_frame"

    # ------------------------------------------------------------------------ the batch's extension points
    def load_items(self, validate: bool = True) -> list[BatchItem]:
        """Every shot, validated with what continuity adds (nothing is sent before this returns)."""
        shared = {name: getattr(self, name) for name in SHARED_FIELDS}
        shared["return_last_frame"] = True if self._chained else None
        source = "shots" if self.storyboard_file is None else str(self.storyboard_file)
        items = build_items(((None, shot) for shot in self._shot_list()), shared, source, validate=validate)
        for item in items if validate and self._chained else ():
            model = item.request.model
            if "t2v" in model.lower():
                raise GPTProtoRequestError(
                    f"shot {item.index}: model {model!r} makes video from text only, but "
                    "continuity='last_frame' starts each shot from the previous shot's last frame; use "
                    f"an image-to-video model (e.g. {DEFAULT_MODEL!r}) or continuity='none'",
                    field="model",
                )
            if item.index and item.request.images:
                raise GPTProtoRequestError(
                    f"shot {item.index}: with continuity='last_frame' its first frame is the previous "
                    "shot's last frame; remove its images or use continuity='none'",
                    field="images",
                )
        items = self._with_takes(items)
        self._keys = [item.key for item in items]
        return items

    def _shot_list(self) -> list[Any]:
        if self.storyboard_file is None:
            shots = self.shots
        else:
            path = ObjectStoragePath(str(self.storyboard_file))
            try:
                shots = yaml.safe_load(path.read_text())  # JSON is YAML too
            except yaml.YAMLError as exc:
                raise GPTProtoRequestError(
                    f"storyboard_file {path} is neither YAML nor JSON: {exc}", field="storyboard_file"
                ) from None
            shots = shots.get("shots") if isinstance(shots, dict) else shots
        if not isinstance(shots, (list, tuple)):
            field = "shots" if self.storyboard_file is None else "storyboard_file"
            raise GPTProtoRequestError(
                f"{field} must give a list of shots (prompt strings or dicts of request fields)"
                + (', or {"shots": [...]}' if self.storyboard_file is not None else "")
                + f", got {type(shots).__name__}",
                field=field,
            )
        return list(shots)

    def _plan(self, total: int, deadline: float) -> plan.BatchPlan:
        return replace(super()._plan(total, deadline), chain=self._chained, item_retries=self.shot_retries)

    def _fingerprint(self, items: list[BatchItem]) -> str:
        return fingerprint(items, extra={"continuity": self.continuity})

    def _request(self, journal: BatchJournal, item: BatchItem) -> VideoGenerationRequest:
        """The shot's request: a retry's new seed, and the previous shot's last frame, read fresh
        (its URL is short-lived) as the first frame."""
        entry = journal.entry(item.index)
        params = dict(item.params)
        if entry.attempt:
            params["seed"] = entry.seed
        if self._chained and item.prompt_index:
            params["images"] = [{"url": self._previous_last_frame(journal, item), "role": "first_frame"}]
        return VideoGenerationRequest.build(**params)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """The stitched video as the output dataset."""
        from airflow_provider_gptproto.utils.openlineage import storyboard_lineage

        return storyboard_lineage(self._result)

    def _previous_last_frame(self, journal: BatchJournal, item: BatchItem) -> str:
        """The previous shot's last frame: its task's fresh ``last_frame_url`` (the links are
        short-lived), or, when the reply carries none (GPTProto's own envelope documents none), the
        last frame of the previous shot's stored video as a ``data:`` URL."""
        before = item.index - self.takes  # the same take's previous shot
        try:
            previous = self.hook.get_task(str(journal.entry(before).task_id))
        except GPTProtoNotFoundError as exc:  # past the retention window: no frame to start from
            raise GPTProtoBadRequestError(f"shot {item.prompt_index - 1}'s task is gone ({exc})") from exc
        if previous.last_frame_url:
            return previous.last_frame_url
        from airflow_provider_gptproto.storage.frames import frame_jpeg

        stored = self._folder() / f"{self._keys[before]}.mp4"
        self.log.info(
            "Task %s reports no last_frame_url: starting shot %d from %s",
            previous.task_id,
            item.index,
            stored,
        )
        with stored.open("rb") as video:
            return "data:image/jpeg;base64," + base64.b64encode(frame_jpeg(video)).decode()

    # ------------------------------------------------------------------------------ the stitched video
    def _finish(
        self,
        context: Context,
        journal: BatchJournal,
        items: list[BatchItem],
        folder: ObjectStoragePath,
        finish: plan.Finish,
    ) -> StoryboardResult | list[StoryboardResult]:
        entries = [journal.entry(item.index) for item in items]
        rows = [manifest_row(item, entry, folder) for item, entry in zip(items, entries, strict=True)]
        for row, entry in zip(rows, entries, strict=True):
            if entry.state is plan.ItemState.TODO:
                row["status"] = "not_created"  # a chain stopped before it
        manifest = write_manifest(folder, rows)
        if finish.error:
            raise GPTProtoError(self._failure(items, entries, finish.failed) + f"; see {manifest}")
        self._stopped_by_budget(journal, finish, manifest)
        spent, stopped = self._spent(journal, items), bool(finish.skipped)
        results = []
        for k in range(1, self.takes + 1):  # take k's shots are every takes-th item from k - 1
            out = folder / f"take-{k}" if self.takes > 1 else folder
            made = [  # all but the shots a spending limit skipped
                (item, entry)
                for item, entry in zip(items[k - 1 :: self.takes], entries[k - 1 :: self.takes], strict=True)
                if entry.state is plan.ItemState.DONE
            ]
            if made:
                mine = [item for item, _ in made], [entry for _, entry in made]
                results.append(self._stitched(folder, out, *mine, manifest, spent, stopped))
        if not results:
            raise AirflowFailException(f"A spending limit let no shot be created; see {manifest}")
        extra = {**results[0], "take_uris": [r["uri"] for r in results]} if self.takes > 1 else results[0]
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra.update(cast("dict[str, Any]", extra))
        journal.delete()
        self._result = results[0]
        return results if self.takes > 1 else results[0]

    def _stitched(
        self,
        folder: ObjectStoragePath,
        out: ObjectStoragePath,
        items: list[BatchItem],
        entries: list[plan.JournalEntry],
        manifest: str,
        spent: Spent,
        budget_stopped: bool,
    ) -> StoryboardResult:
        """One take's shots (stored in ``folder``) stitched into ``out``, with its storyboard.json."""
        out.mkdir(parents=True, exist_ok=True)
        stitched = self._stitch(folder, [item.key for item in items], out)
        usage = _summed(entry.usage for entry in entries)
        shots = [
            {
                "index": item.prompt_index,
                "key": item.key,
                "prompt": item.request.prompt,
                "task_id": entry.task_id,
                "seed": entry.seed,
                "usage": entry.usage,
                "start": span.start,
                "end": span.end,
                "frames": span.frames,
                "dropped_shared_frame": span.dropped_shared_frame,
                "file": str(folder / f"{item.key}.mp4"),
            }
            for item, entry, span in zip(items, entries, stitched.shots, strict=True)
        ]
        document = {
            "video": str(out / VIDEO_NAME),
            "continuity": self.continuity,
            "take": items[0].take,
            "method": stitched.method,
            "reason": stitched.reason,
            "kept_shared_frames": stitched.kept_shared_frames,
            "duration": stitched.duration,
            "width": stitched.width,
            "height": stitched.height,
            "fps": str(stitched.fps),
            "usage": usage,
            "shots": shots,
        }
        write_bytes_atomically(json.dumps(document, indent=2).encode(), out / STORYBOARD_NAME)
        from airflow_provider_gptproto.storage.stitch import chapters_vtt

        titles = [item.request.prompt or f"Shot {item.prompt_index + 1}" for item in items]
        write_bytes_atomically(chapters_vtt(titles, stitched.shots).encode(), out / CHAPTERS_NAME)
        result: StoryboardResult = {
            "kind": "storyboard",
            "uri": str(out / VIDEO_NAME),
            "manifest_uri": manifest,
            "storyboard_uri": str(out / STORYBOARD_NAME),
            "chapters_uri": str(out / CHAPTERS_NAME),
            "destination": str(out),
            "duration": stitched.duration,
            "shots": len(items),
            "method": stitched.method,
            "usage": usage,
            "take": items[0].take,
            "takes": self.takes,
            "spent": spent,
            "budget_stopped": budget_stopped,
        }
        self.log.info(
            "Storyboard take %d of %d shots stitched (%s: %s): %.2f s at %s",
            items[0].take,
            len(items),
            stitched.method,
            stitched.reason,
            stitched.duration,
            result["uri"],
        )
        return result

    def _failure(
        self, items: list[BatchItem], entries: list[plan.JournalEntry], failed: Sequence[int]
    ) -> str:
        """Which shot failed, its prompt and why (content policy named as such)."""
        index = failed[0]
        entry, item = entries[index], items[index]
        reason = "rejected by content policy" if entry.kind == plan.POLICY_KIND else f"{entry.kind} failure"
        tries = f" after {(entry.attempt or 0) + 1} attempts" if entry.attempt else ""
        others = f" (and shots {', '.join(map(str, failed[1:]))})" if len(failed) > 1 else ""
        stopped = "; the shots after it were not created" if self._chained and index < len(items) - 1 else ""
        return (
            f"Storyboard failed at shot {item.prompt_index} ({item.key}){others}, prompt "
            f"{item.request.prompt!r}: {reason}{tries}: {entry.error}{stopped}. A new try "
            "resumes at this shot and keeps the finished ones"
        )

    def _stitch(self, folder: ObjectStoragePath, keys: list[str], out: ObjectStoragePath) -> StitchResult:
        """Stitch in a local temporary folder (shots copied down unless local), then store the video."""
        try:
            from airflow_provider_gptproto.storage.stitch import stitch
        except ImportError as exc:
            raise GPTProtoError(
                f"Stitching a storyboard needs PyAV ({exc}): "
                "pip install 'airflow-provider-gptproto[storyboard]'"
            ) from exc
        with tempfile.TemporaryDirectory(prefix="gptproto-storyboard-") as tmp:
            paths = []
            for key in keys:
                shot = folder / f"{key}.mp4"
                if shot.protocol in ("", "file", "local"):
                    paths.append(Path(shot.path))
                    continue
                paths.append(Path(tmp) / f"{key}.mp4")
                with shot.open("rb") as source, paths[-1].open("wb") as target:
                    shutil.copyfileobj(source, target, READ_BYTES)
            output = Path(tmp) / VIDEO_NAME
            result = stitch(paths, output, drop_shared_frames=self._chained)
            with output.open("rb") as video:
                write_stream_atomically(
                    iter(lambda: video.read(READ_BYTES), b""), out / VIDEO_NAME, content_type="video/mp4"
                )
        return result


def _summed(usages: Any) -> dict[str, int] | None:
    total: dict[str, int] = {}
    for usage in usages:
        for name, value in (usage or {}).items():
            if isinstance(value, int) and not isinstance(value, bool):
                total[name] = total.get(name, 0) + value
    return total or None


__all__ = ["GPTProtoStoryboardOperator"]
