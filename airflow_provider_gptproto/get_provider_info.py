"""Provider metadata for Airflow's ProvidersManager; declarative, so the UI (3.2+) builds the
connection form without importing the hook."""

from __future__ import annotations

from typing import Any

DEFAULT_TIMEOUT_SECONDS = 60
DEFAULT_RETRY_LIMIT = 5
DEFAULT_MAX_BYTES = 4 * 1024**3  # the largest video a download accepts, unless told otherwise
_PKG = "airflow_provider_gptproto"
_INTEGRATION = "GPTProto"


def get_provider_info() -> dict[str, Any]:
    """Return the provider info dict; validated against Airflow's schema in tests."""
    return {
        "package-name": "airflow-provider-gptproto",
        "name": "GPTProto",
        "description": "GPTProto video generation (text-to-video, image-to-video) for Apache Airflow.",
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://docs.gptproto.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.hooks.gptproto"]}],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    f"{_PKG}.operators.gptproto",
                    f"{_PKG}.operators.batch",
                    f"{_PKG}.operators.storyboard",
                ],
            }
        ],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.sensors.gptproto"]}],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [f"{_PKG}.triggers.gptproto", f"{_PKG}.triggers.batch"],
            }
        ],
        "extra-links": [f"{_PKG}.links.gptproto.GPTProtoVideoLink"],
        "plugins": [{"name": "gptproto", "plugin-class": f"{_PKG}.plugins.gptproto.GPTProtoUIPlugin"}],
        "config": provider_config(),
        "connection-types": [
            {
                "connection-type": "gptproto",
                "hook-class-name": f"{_PKG}.hooks.gptproto.GPTProtoHook",
                "hook-name": "GPTProto",
                "ui-field-behaviour": ui_field_behaviour(),
                "conn-fields": conn_fields(),
            }
        ],
    }


def ui_field_behaviour() -> dict[str, Any]:
    """Hidden, relabelled and placeholder fields; shared with the hook's legacy classmethod."""
    return {
        "hidden-fields": ["schema", "port", "login"],
        "relabeling": {"host": "Base URL", "password": "API Key"},
        "placeholders": {
            "host": "https://gptproto.com (default when empty)",
            "password": "sk-... (sent as 'Authorization: Bearer <key>')",
        },
    }


def conn_fields() -> dict[str, Any]:
    """Extra fields stored as plain keys in the connection's ``extra`` JSON."""
    return {
        "timeout": {
            "label": "Request timeout (seconds)",
            "description": "Per-request HTTP timeout. Does not bound how long a video may take to generate.",
            "schema": {"type": ["integer", "null"], "minimum": 1, "default": DEFAULT_TIMEOUT_SECONDS},
        },
        "retry_limit": {
            "label": "Retry limit",
            "description": "Attempts for transient failures (429, 5xx, connection errors) per API call.",
            "schema": {"type": ["integer", "null"], "minimum": 1, "default": DEFAULT_RETRY_LIMIT},
        },
        "max_bytes": {
            "label": "Largest video (bytes)",
            "description": "A larger video fails to download; an operator's max_bytes wins. Default 4 GiB.",
            "schema": {"type": ["integer", "null"], "minimum": 1, "default": DEFAULT_MAX_BYTES},
        },
        "allow_private_urls": {
            "label": "Allow private URLs",
            "description": "Download from loopback and private addresses even when the Base URL is public.",
            "schema": {"type": ["boolean", "null"], "default": False},
        },
    }


def provider_config() -> dict[str, Any]:
    """``[gptproto]`` options: the async hooks' shared session and the UI plugin (Video tab, gallery)."""
    return {
        "gptproto": {
            "description": "GPTProto provider: the async hooks' shared HTTP session; the UI plugin "
            "(Video tab on task instances, GPTProto videos page).",
            "options": {
                "connections_per_loop": {
                    "description": "Most sockets that the async hooks of one event loop (all the "
                    "GPTProto triggers of a triggerer) open at once; further requests wait for a free "
                    "one before they are built. Raise it when the API allows more concurrency and one "
                    "triggerer runs many thousands of waits.",
                    "version_added": "0.1.0",
                    "type": "integer",
                    "example": "128",
                    "default": "64",
                },
                "ui_plugin_enabled": {
                    "description": "Show the Video tab and the gallery, and serve their endpoints "
                    "under /gptproto.",
                    "version_added": "0.1.0",
                    "type": "boolean",
                    "example": "False",
                    "default": "True",
                },
                "ui_media_roots": {
                    "description": "Comma-separated folders; when set, the plugin serves only stored "
                    "videos and posters whose real path lies inside one of them. Empty: wherever a task "
                    "recorded them.",
                    "version_added": "0.1.0",
                    "type": "string",
                    "example": "/data/videos,/mnt/share/gptproto",
                    "default": "",
                },
            },
        }
    }
