"""Extra link from a task instance to the video it produced."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey
    from airflow.sdk import BaseOperator

VIDEO_URL_XCOM_KEY = "gptproto_video_url"


class GPTProtoVideoLink(BaseOperatorLink):
    """ "GPTProto video" button on the task instance page, once the video URL is known.

    Airflow 3 evaluates links on the worker after each phase and stores them in XCom, so this only
    reads the URL the operator pushed; it never calls the API.
    """

    name = "GPTProto video"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        url = XCom.get_value(key=VIDEO_URL_XCOM_KEY, ti_key=ti_key)
        return url if isinstance(url, str) and url.startswith(("http://", "https://")) else ""
