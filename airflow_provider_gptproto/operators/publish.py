"""GPTProtoPublishVideosOperator: copy only the takes a review chose to a publish destination."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.common.compat.sdk import AirflowSkipException, Asset, AssetAlias, ObjectStoragePath

from airflow_provider_gptproto.exceptions import GPTProtoRequestError, GPTProtoVideoDownloadError
from airflow_provider_gptproto.models import GenerationTask, TaskStatus
from airflow_provider_gptproto.models.results import ChosenTake, PublishedVideo, PublishResult, ReviewResult
from airflow_provider_gptproto.models.review import published_name
from airflow_provider_gptproto.operators.base import GPTProtoBaseOperator
from airflow_provider_gptproto.storage import DownloadedVideo
from airflow_provider_gptproto.storage.atomic import READ_BYTES, write_stream_atomically
from airflow_provider_gptproto.utils.destination import check_destination, is_static

if TYPE_CHECKING:
    from airflow.sdk import Context

PUBLISHED = AssetAlias(name="gptproto_published", group="gptproto")


class GPTProtoPublishVideosOperator(GPTProtoBaseOperator):
    """Copy the takes a :class:`~airflow_provider_gptproto.operators.review.GPTProtoReviewVideosOperator`
    chose into ``destination``, each whole or not at all, and record an asset event there.

    Files are named ``<group>-<prompt words>-take<k>.mp4`` (a retry overwrites them with the same
    bytes); a take known only by its signed ``video_url`` is downloaded. A rejected review skips.

    :param review: the review's result (templated; usually ``review_task.output``).
    :param destination: folder (ObjectStoragePath or URI, templated) to publish into.
    :param gptproto_conn_id: the connection used to download a take that was not stored.

    Outlets default to the ``gptproto_published`` asset alias: each run adds an event on the asset
    whose URI is the destination folder (schedule on ``Asset("<destination URI>")``), its extra the
    :class:`~airflow_provider_gptproto.models.results.PublishResult` the task returns.
    """

    template_fields: Sequence[str] = ("review", "destination")
    ui_color = "#e6f4ea"

    def __init__(self, *, review: Any, destination: str | ObjectStoragePath, **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [PUBLISHED])
        super().__init__(**kwargs)
        check_destination(destination, templated=not is_static({"destination": destination}))
        self.review = review
        self.destination = destination

    def execute(self, context: Context) -> PublishResult:
        review: ReviewResult = self.review
        if not isinstance(review, dict) or review.get("kind") != "review":
            raise GPTProtoRequestError(
                f"review must be a GPTProtoReviewVideosOperator result (kind 'review'), got {review!r:.200}",
                field="review",
            )
        if not review["approved"]:
            raise AirflowSkipException("The review rejected the videos: nothing is published")
        check_destination(str(self.destination), templated=False)
        folder = ObjectStoragePath(self.destination)
        folder.mkdir(parents=True, exist_ok=True)
        published: list[PublishedVideo] = []
        for take in review["chosen"]:
            video = self._publish(take, folder / published_name(take))
            published.append(
                {
                    "group": take["group"],
                    "take": take["take"],
                    "prompt": take["prompt"],
                    "uri": video.uri,
                    "bytes": video.bytes,
                    "sha256": video.sha256,
                    "source_uri": take["uri"],
                }
            )
            self.log.info("Published group %d take %d to %s", take["group"], take["take"], video.uri)
        result: PublishResult = {"kind": "publish", "destination": str(folder), "published": published}
        uri = f"{folder.protocol or 'file'}://{folder.path}"  # the storage connection left out
        extra = cast("dict[str, Any]", result)
        for outlet in self.outlets:
            events = context["outlet_events"][outlet]
            if isinstance(outlet, AssetAlias):
                events.add(Asset(uri=uri), extra=extra)
            else:
                events.extra.update(extra)
        return result

    def _publish(self, take: ChosenTake, target: ObjectStoragePath) -> DownloadedVideo:
        """Copy the stored take (checked against the sha256 reviewed), else download it by its URL."""
        if take["uri"]:
            source = ObjectStoragePath(take["uri"])
            try:
                return write_stream_atomically(
                    _chunks(source), target, content_type="video/mp4", expected_sha256=take["sha256"]
                )
            except GPTProtoVideoDownloadError as exc:
                raise GPTProtoVideoDownloadError(f"{source} not published: {exc}") from exc
        if take["video_url"]:
            task_id = take["gptproto_task_id"] or "unknown"
            task = GenerationTask(task_id=task_id, status=TaskStatus.SUCCEEDED, video_url=take["video_url"])
            return self.hook.download_task_video(task, target)
        raise GPTProtoVideoDownloadError(
            f"Take {take['take']} of group {take['group']} has no stored video or URL: nothing to publish"
        )


def _chunks(source: ObjectStoragePath) -> Iterator[bytes]:
    with source.fs.open(source.path, mode="rb") as handle:
        while chunk := handle.read(READ_BYTES):
            yield chunk
