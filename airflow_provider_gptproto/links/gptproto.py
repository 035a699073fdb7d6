"""Extra link from a task instance to the video it produced."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import RuntimeTaskInstanceProtocol as RuntimeTaskInstance

VIDEO_URL_XCOM_KEY = "gptproto_video_url"
# Where announce() leaves the URL on the operator object for the link (same worker process).
VIDEO_URL_ATTR = "_gptproto_video_url"


def remember_video_url(ti: RuntimeTaskInstance, url: str) -> None:
    """Hand the URL to :class:`GPTProtoVideoLink`, which runs on the same operator after the phase."""
    task = getattr(ti, "task", None)
    if task is not None:
        setattr(task, VIDEO_URL_ATTR, url)


class GPTProtoVideoLink(BaseOperatorLink):
    """ "GPTProto video" button on the task instance page, once the video URL is known.

    Airflow 3 evaluates links on the worker, on the operator that just ran, so this reads the URL it
    announced: no API call, and no XCom lookup (which logs an error when a failed task has none).
    """

    name = "GPTProto video"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        url = getattr(operator, VIDEO_URL_ATTR, "")
        return url if isinstance(url, str) and url.startswith(("http://", "https://")) else ""
