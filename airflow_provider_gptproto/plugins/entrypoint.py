"""The ``airflow.plugins`` entry point: loads the plugin when provider info will not.

Airflow loads the ``plugins`` a provider lists in its provider info only with
``[core] lazy_discover_providers = False``; with the default (True) they are skipped, while
``airflow.plugins`` entry points are always loaded. This entry point therefore hands Airflow the
plugin class only under the default, and nothing (which Airflow skips silently) when provider info
already registers it, so the plugin is loaded exactly once either way.
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
