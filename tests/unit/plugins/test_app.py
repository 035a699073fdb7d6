"""The Video tab's choice of source, and the plugin's switches (config option, entry point)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from airflow import __version__ as airflow_version
from packaging.version import Version
from starlette.requests import Request

from airflow_provider_gptproto.plugins import entrypoint
from airflow_provider_gptproto.plugins.app import _map_index, _public, _task_video
from airflow_provider_gptproto.plugins.gptproto import GPTProtoUIPlugin
from airflow_provider_gptproto.plugins.records import VideoRecord

AIRFLOW_VERSION = Version(Version(airflow_version).base_version).release[:2]
REQUEST = Request({"type": "http", "root_path": "/gptproto", "path": "/", "headers": []})
NOW = datetime.now(timezone.utc)


def _record(**kwargs: object) -> VideoRecord:
    return VideoRecord("dag", "manual__1+00:00", "generate", **kwargs)  # type: ignore[arg-type]


def test_stored_copy_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__GPTPROTO__UI_MEDIA_ROOTS", raising=False)
    (tmp_path / "v.mp4").write_bytes(b"x")
    (tmp_path / "v.jpg").write_bytes(b"x")
    record = _record(
        stored_uri=str(tmp_path / "v.mp4"), poster_uri=str(tmp_path / "v.jpg"), video_url="https://x"
    )
    video = _task_video(REQUEST, record, 2)
    assert (
        video["source"]
        == video["stored"]
        == "/gptproto/media/ti/dag/manual__1%2B00%3A00/generate/2/video?map_index=-1"
    )
    assert video["poster"].endswith("/2/poster?map_index=-1") and video["notice"] == ""


def test_signed_link_while_valid_then_expired() -> None:
    valid = _task_video(
        REQUEST, _record(video_url="https://cdn/v.mp4", video_url_expires=NOW + timedelta(hours=1)), 0
    )
    assert valid["source"] == "https://cdn/v.mp4" and valid["stored"] is None
    assert "signed link" in valid["notice"] and "valid until" in valid["notice"]
    expired = _task_video(
        REQUEST, _record(video_url="https://cdn/v.mp4", video_url_expires=NOW - timedelta(seconds=1)), 0
    )
    assert (
        expired["source"] is None and "expired" in expired["notice"] and "no stored copy" in expired["notice"]
    )
    unknown = _task_video(REQUEST, _record(video_url="https://cdn/v.mp4"), 0)
    assert unknown["source"] == "https://cdn/v.mp4" and "valid until" not in unknown["notice"]
    nothing = _task_video(REQUEST, _record(), 0)
    assert nothing["source"] is None and nothing["notice"] == "No video for this task."


def test_public_json_hides_server_locations() -> None:
    data = _public(_record(stored_uri="/data/v.mp4", poster_uri="/data/v.jpg"))
    assert "stored_uri" not in data and "poster_uri" not in data and data["stored"] is True


def test_map_index_placeholder_means_unmapped() -> None:
    assert _map_index("{MAP_INDEX}") == -1 and _map_index(None) == -1 and _map_index("3") == 3


@pytest.mark.skipif(AIRFLOW_VERSION < (3, 1), reason="Airflow 3.0 has no plugin views; the plugin is empty")
def test_plugin_views() -> None:
    views = {v["url_route"]: v for v in GPTProtoUIPlugin.external_views}
    assert views["gptproto-video"]["destination"] == "task_instance"
    assert views["gptproto-video"]["href"] == "/gptproto/ti/{DAG_ID}/{RUN_ID}/{TASK_ID}?map_index={MAP_INDEX}"
    assert views["gptproto-videos"]["destination"] == "nav"
    assert [a["url_prefix"] for a in GPTProtoUIPlugin.fastapi_apps] == ["/gptproto"]


def _plugin_in_subprocess(**env: str) -> dict[str, object]:
    code = (
        "import json; from airflow_provider_gptproto.plugins.gptproto import GPTProtoUIPlugin as P; "
        "print(json.dumps({'views': [v['href'] for v in getattr(P, 'external_views', [])], "
        "'apps': len(getattr(P, 'fastapi_apps', []))}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_config_option_turns_the_plugin_off() -> None:
    assert _plugin_in_subprocess(AIRFLOW__GPTPROTO__UI_PLUGIN_ENABLED="False") == {"views": [], "apps": 0}
    on = _plugin_in_subprocess(AIRFLOW__API__BASE_URL="https://airflow.example/sub/")
    if AIRFLOW_VERSION < (3, 1):  # `make test-oldest`: Airflow 3.0 has no plugin views to show
        assert on == {"views": [], "apps": 0}
    else:
        assert on["apps"] == 1 and on["views"][1] == "/sub/gptproto/videos"


def test_entry_point_steps_aside_when_provider_info_loads_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entrypoint, "provider_info_loads_plugins", lambda: False)
    assert entrypoint.plugin is GPTProtoUIPlugin  # type: ignore[attr-defined]
    monkeypatch.setattr(entrypoint, "provider_info_loads_plugins", lambda: True)
    assert entrypoint.plugin is None  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        _ = entrypoint.other  # type: ignore[attr-defined]
