"""The ``airflow.plugins`` entry point: loads the plugin when provider info will not.

Provider info's ``plugins`` load only with ``[core] lazy_discover_providers = False``; entry points
always do. So this hands over the plugin only under the default (True): it loads exactly once.
"""

from __future__ import annotations

from typing import Any


def provider_info_loads_plugins() -> bool:
    from airflow import settings

    return not settings.LAZY_LOAD_PROVIDERS


def __getattr__(name: str) -> Any:
    if name != "plugin":
        raise AttributeError(name)
    if provider_info_loads_plugins():
        return None
    from airflow_provider_gptproto.plugins.gptproto import GPTProtoUIPlugin

    return GPTProtoUIPlugin
