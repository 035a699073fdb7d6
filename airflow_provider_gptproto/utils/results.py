"""What every waiting task (operator or sensor) does with a finished remote task."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_gptproto.exceptions import GPTProtoError, GPTProtoTaskContentPolicyError
from airflow_provider_gptproto.links.gptproto import VIDEO_URL_XCOM_KEY, remember_video_url
from airflow_provider_gptproto.models import GenerationTask, TaskStatus
from airflow_provider_gptproto.models.results import GenerateResult

if TYPE_CHECKING:
    from airflow.sdk.types import Logger
    from airflow.sdk.types import RuntimeTaskInstanceProtocol as RuntimeTaskInstance

TASK_ID_XCOM_KEY = "gptproto_task_id"


def announce(ti: RuntimeTaskInstance, task_id: str | None, video_url: str = "") -> None:
    """Publish the remote id at once, and a (possibly empty: the link's button hides) video URL for
    XCom readers and the link."""
    if task_id:
        ti.xcom_push(key=TASK_ID_XCOM_KEY, value=task_id)
    ti.xcom_push(key=VIDEO_URL_XCOM_KEY, value=video_url)
    remember_video_url(ti, video_url)


def deliver(
    video_size: Callable[[str], int | None],
    task: GenerationTask,
    ti: RuntimeTaskInstance,
    log: Logger | logging.Logger,
    *,
    retry_on_content_policy: bool,
    id_published: bool = False,
) -> GenerateResult:
    """Raise for a task that ended without a video (a content-policy rejection as an
    AirflowFailException, unless retries are opted in); else publish its URL and return the result.

    ``video_size``: a HEAD, or the trigger's measure. ``id_published``: saves a second XCom push.
    """
    try:
        task.raise_for_status()
    except GPTProtoTaskContentPolicyError as exc:
        if retry_on_content_policy:
            raise
        raise AirflowFailException(f"{exc} (content policy rejection: not retried)") from exc
    if task.status is not TaskStatus.SUCCEEDED:
        raise GPTProtoError(f"GPTProto task {task.task_id} is not finished ({task.status.value})")
    announce(ti, None if id_published else task.task_id, task.video_url or "")
    if task.video_url:
        size = describe_size(video_size(task.video_url))
        log.info("GPTProto task %s succeeded: video %s (%s)", task.task_id, task.video_url, size)
    else:
        log.warning("GPTProto task %s succeeded but the reply carries no video URL", task.task_id)
    return GenerateResult(kind="generate", **task.to_dict())


def describe_size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    return f"{size / 1_048_576:.1f} MiB" if size >= 1_048_576 else f"{size / 1024:.1f} KiB"
