"""The plugin Airflow loads. Its app is built on the api-server's first request, not on import; it
is empty (no tab, menu entry or endpoint) with ``[gptproto] ui_plugin_enabled = False`` or on Airflow 3.0.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from airflow import __version__ as airflow_version
from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin
from packaging.version import Version

URL_PREFIX = "/gptproto"
CONFIG_SECTION = "gptproto"


def plugin_enabled() -> bool:
    """``[gptproto] ui_plugin_enabled``, on an Airflow whose UI shows plugin views (3.1+)."""
    has_external_views = Version(Version(airflow_version).base_version) >= Version("3.1")
    return has_external_views and conf.getboolean(CONFIG_SECTION, "ui_plugin_enabled", fallback=True)


def ui_base_path() -> str:
    """The path Airflow's UI lives under (``[api] base_url``), without a trailing slash."""
    return urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


class LazyApp:
    """ASGI app that imports and builds the real one when the api-server first calls it."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from airflow_provider_gptproto.plugins.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


def _external_views() -> list[dict[str, Any]]:
    base = ui_base_path() + URL_PREFIX
    return [
        {
            "name": "Video",
            # Placeholders the UI fills in; the map index goes in the query (it stays literal on
            # unmapped tasks, which the endpoint reads as -1).
            "href": base + "/ti/{DAG_ID}/{RUN_ID}/{TASK_ID}?map_index={MAP_INDEX}",
            "destination": "task_instance",
            "url_route": "gptproto-video",
        },
        {
            "name": "GPTProto videos",
            "href": base + "/videos",
            "destination": "nav",
            "category": "browse",
            "url_route": "gptproto-videos",
        },
    ]


class GPTProtoUIPlugin(AirflowPlugin):
    """Video tab, gallery and the endpoints behind them (all behind Airflow's own auth checks)."""

    name = "gptproto"
    if plugin_enabled():
        fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "GPTProto videos"}]
        external_views = _external_views()
