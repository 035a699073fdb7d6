"""The asset every downloaded video updates, so downstream DAGs can be scheduled on new videos."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import Asset

GPTPROTO_VIDEOS = Asset(name="gptproto_videos", uri="gptproto://videos", group="gptproto")
