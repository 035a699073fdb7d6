"""The UI plugin's endpoints against a real api-server: permissions, file lookup, Range, secrets.

One Airflow stack (api-server, scheduler, dag-processor, triggerer) for the module, with one
emulator and five finished runs (see ``tests/support/video_plugin_stack.py``). Requests go over
HTTP like the browser's: a bearer token from ``POST /auth/token``, or nothing.
"""

from __future__ import annotations

import hashlib
import http.client
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import pytest
import requests

from tests.support.video_plugin_stack import (
    ALPHA,
    BATCH,
    BETA,
    HOSTILE,
    LIMITED_USER,
    SIGNED_ONLY,
    VideoPluginStack,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(600)]

PASSWD_LINE = "root:x:0:0"
# The prompt of every result the hostile DAG records (tests/support/video_plugin_dags/ui_videos.py).
HOSTILE_PROMPT = '<img src=x onerror=alert(1)> "><script>alert(1)</script>'


@pytest.fixture(scope="module")
def plugin(video_plugin: VideoPluginStack) -> VideoPluginStack:
    """The shared UI-plugin stack (tests/conftest.py), started once for this module and its sibling."""
    return video_plugin


def _ti_path(plugin: VideoPluginStack, kind: str, dag_id: str, task_id: str, suffix: str = "") -> str:
    run = quote(plugin.run_id(dag_id), safe="")
    return f"/gptproto/{kind}/{dag_id}/{run}/{task_id}{suffix}"


def _get(plugin: VideoPluginStack, path: str, who: str | None = "admin", **kwargs: Any) -> requests.Response:
    headers = dict(kwargs.pop("headers", {}))
    if who is not None:
        client = plugin.admin if who == "admin" else plugin.alice
        headers["Authorization"] = f"Bearer {client.token()}"
    return requests.get(plugin.stack.base_url + path, headers=headers, timeout=30, **kwargs)


def _raw_get(plugin: VideoPluginStack, raw_path: str) -> tuple[int, bytes]:
    """A request whose path goes out byte for byte (requests/urllib3 would resolve ``..``)."""
    url = urlparse(plugin.stack.base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        conn.request("GET", raw_path, headers={"Authorization": f"Bearer {plugin.admin.token()}"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _all_endpoints(plugin: VideoPluginStack) -> list[str]:
    event = _get(plugin, "/gptproto/api/videos").json()["videos"][0]["event_id"]
    return [
        _ti_path(plugin, "ti", ALPHA, "download"),
        _ti_path(plugin, "api/ti", ALPHA, "download"),
        _ti_path(plugin, "media/ti", ALPHA, "download", "/0/video"),
        _ti_path(plugin, "media/ti", ALPHA, "download", "/0/poster"),
        "/gptproto/videos",
        "/gptproto/api/videos",
        f"/gptproto/media/event/{event}/video",
        f"/gptproto/media/event/{event}/poster",
    ]


def test_runs_succeed_and_downloads_record_posters(plugin: VideoPluginStack) -> None:
    assert {dag_id: run.state for dag_id, run in plugin.runs.items()} == dict.fromkeys(plugin.runs, "success")
    events = plugin.admin.asset_events("gptproto_videos")
    assert sorted(e["source_dag_id"] for e in events) == [ALPHA, BATCH, BETA]  # one event per batch
    for event in (e for e in events if e["source_dag_id"] != BATCH):
        video, poster = Path(event["extra"]["uri"]), Path(event["extra"]["poster_uri"])
        assert poster == video.with_suffix(".jpg") and poster.is_file()
        assert poster.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG


def test_plugin_is_registered_with_its_views(plugin: VideoPluginStack) -> None:
    plugins = {p["name"]: p for p in plugin.admin.get("/plugins")["plugins"]}
    views = {v["name"]: v for v in plugins["gptproto"]["external_views"]}
    assert views["Video"]["destination"] == "task_instance"
    assert views["Video"]["href"].startswith("/gptproto/ti/{DAG_ID}/{RUN_ID}/{TASK_ID}")
    assert views["GPTProto videos"]["destination"] == "nav"
    assert [a["url_prefix"] for a in plugins["gptproto"]["fastapi_apps"]] == ["/gptproto"]


def test_every_endpoint_refuses_an_unauthenticated_request(plugin: VideoPluginStack) -> None:
    for path in _all_endpoints(plugin):
        assert _get(plugin, path, who="admin").status_code == 200, path
        resp = _get(plugin, path, who=None)
        assert resp.status_code == 401, (path, resp.status_code, resp.text[:200])
        forged = _get(plugin, path, who=None, headers={"Authorization": "Bearer not-a-token"})
        assert forged.status_code in (401, 403), (path, forged.status_code)
        assert not forged.content.startswith(b"<!doctype html")


def test_video_tab_of_download_and_generate(plugin: VideoPluginStack) -> None:
    download = _get(plugin, _ti_path(plugin, "api/ti", ALPHA, "download")).json()["videos"]
    assert len(download) == 1
    video = download[0]
    record = video["record"]
    assert video["source"] == video["stored"]
    assert video["stored"].endswith("/0/video?map_index=-1") and video["poster"].endswith(
        "/0/poster?map_index=-1"
    )
    assert record["prompt"] == "A red fox running through fresh snow at dawn"
    assert record["seed"] == 7 and record["duration"] == "5s" and record["dimension"] == "1280:768"
    assert record["model"] and len(record["sha256"]) == 64 and record["bytes"] > 10_000
    assert "stored_uri" not in record and record["stored"] is True

    # The generate task's tab plays the copy its run's download stored, and shows the usage.
    generate = _get(plugin, _ti_path(plugin, "api/ti", ALPHA, "generate")).json()["videos"]
    assert len(generate) == 1
    assert generate[0]["stored"] is not None and generate[0]["record"]["sha256"] == record["sha256"]
    assert generate[0]["record"]["usage"]
    page = _get(plugin, _ti_path(plugin, "ti", ALPHA, "generate")).text
    assert '<video controls preload="auto" src="/gptproto/media/ti/' in page
    assert "A red fox running through fresh snow at dawn" in page and "Usage" in page


def test_video_tab_of_a_batch_lists_its_videos_from_the_manifest(plugin: VideoPluginStack) -> None:
    videos = _get(plugin, _ti_path(plugin, "api/ti", BATCH, "batch")).json()["videos"]
    assert sorted(v["record"]["prompt"] for v in videos) == ["A kite over green hills", "A tram at night"]
    manifest = [
        json.loads(line)
        for line in (plugin.output_dir / BATCH / "manifest.jsonl").read_text().splitlines()
        if line.strip()
    ]
    sha_by_prompt = {row["prompt"]: row["sha256"] for row in manifest}
    for video in videos:
        record = video["record"]
        assert video["source"] == video["stored"] and record["stored"] is True and record["seed"] == 11
        served = _get(plugin, video["stored"])
        assert served.status_code == 200 and served.headers["content-type"] == "video/mp4"
        assert (
            hashlib.sha256(served.content).hexdigest() == record["sha256"] == sha_by_prompt[record["prompt"]]
        )
    page = _get(plugin, _ti_path(plugin, "ti", BATCH, "batch")).text
    assert page.count('<video controls preload="auto" src="/gptproto/media/ti/') == 2


def test_video_is_served_with_range_support(plugin: VideoPluginStack) -> None:
    video = _get(plugin, _ti_path(plugin, "api/ti", ALPHA, "download")).json()["videos"][0]
    whole = _get(plugin, video["stored"])
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    assert hashlib.sha256(whole.content).hexdigest() == video["record"]["sha256"]
    part = _get(plugin, video["stored"], headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(whole.content)}"
    assert part.content == whole.content[1000:2000]
    tail = _get(plugin, video["stored"], headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == whole.content[-100:]
    poster = _get(plugin, video["poster"])
    assert poster.headers["content-type"] == "image/jpeg" and poster.content[:3] == b"\xff\xd8\xff"


def test_gallery_lists_newest_first_with_filter_and_paging(plugin: VideoPluginStack) -> None:
    data = _get(plugin, "/gptproto/api/videos").json()
    assert data["total_entries"] == 3 and data["dag_ids"] == [ALPHA, BATCH, BETA]
    stamps = [v["timestamp"] for v in data["videos"]]
    assert stamps == sorted(stamps, reverse=True)
    for video in data["videos"]:
        assert video["run_id"] == plugin.run_id(video["dag_id"]) and video["prompt"]
        if video["dag_id"] == BATCH:  # the batch's one event names its manifest, not a video
            assert video["prompt"].startswith("Batch: 2 of 2 videos") and video["poster"] is None
            assert video["video"] is None  # its card opens the batch task's Video tab instead
            continue
        poster = _get(plugin, video["poster"])
        assert poster.status_code == 200 and poster.content[:3] == b"\xff\xd8\xff"
        # What a click on the card plays: the stored video, whole.
        played = _get(plugin, video["video"])
        assert played.status_code == 200 and played.headers["content-type"] == "video/mp4"
        assert len(played.content) == video["bytes"]
    only_beta = _get(plugin, f"/gptproto/api/videos?dag_id={BETA}").json()
    assert [v["dag_id"] for v in only_beta["videos"]] == [BETA] and only_beta["total_entries"] == 1
    second = _get(plugin, "/gptproto/api/videos?limit=1&offset=1").json()
    assert second["total_entries"] == 3 and [v["event_id"] for v in second["videos"]] == [
        data["videos"][1]["event_id"]
    ]
    page = _get(plugin, "/gptproto/videos?limit=1").text
    assert page.count('<article class="card"') == 1 and 'rel="next"' in page
    assert f"/dags/{ALPHA}/runs/" in _get(plugin, f"/gptproto/videos?dag_id={ALPHA}").text


def test_user_limited_to_one_dag(plugin: VideoPluginStack) -> None:
    """``alice`` may read ``ui_videos_alpha`` only: Airflow's own API and the plugin agree."""
    beta_ti = f"/api/v2/dags/{BETA}/dagRuns/{quote(plugin.run_id(BETA), safe='')}/taskInstances/download"
    alpha_ti = f"/api/v2/dags/{ALPHA}/dagRuns/{quote(plugin.run_id(ALPHA), safe='')}/taskInstances/download"
    assert _get(plugin, beta_ti, who=LIMITED_USER).status_code == 403
    assert _get(plugin, alpha_ti, who=LIMITED_USER).status_code == 200

    for path in (
        _ti_path(plugin, "ti", BETA, "download"),
        _ti_path(plugin, "api/ti", BETA, "generate"),
        _ti_path(plugin, "media/ti", BETA, "download", "/0/video"),
        _ti_path(plugin, "media/ti", BETA, "download", "/0/poster"),
    ):
        assert _get(plugin, path, who=LIMITED_USER).status_code == 403, path
    assert _get(plugin, _ti_path(plugin, "media/ti", ALPHA, "download", "/0/video"), who=LIMITED_USER).ok

    mine = _get(plugin, "/gptproto/api/videos", who=LIMITED_USER).json()
    assert [v["dag_id"] for v in mine["videos"]] == [ALPHA] and mine["total_entries"] == 1
    assert mine["dag_ids"] == [ALPHA]
    assert _get(plugin, f"/gptproto/api/videos?dag_id={BETA}", who=LIMITED_USER).json()["videos"] == []
    page = _get(plugin, "/gptproto/videos", who=LIMITED_USER).text
    assert BETA not in page and "A paper boat" not in page

    events = {v["dag_id"]: v["event_id"] for v in _get(plugin, "/gptproto/api/videos").json()["videos"]}
    for kind in ("video", "poster"):
        assert (
            _get(plugin, f"/gptproto/media/event/{events[BETA]}/{kind}", who=LIMITED_USER).status_code == 403
        )
        assert (
            _get(plugin, f"/gptproto/media/event/{events[ALPHA]}/{kind}", who=LIMITED_USER).status_code == 200
        )


def test_expired_signed_url_without_a_stored_copy(plugin: VideoPluginStack) -> None:
    path = _ti_path(plugin, "api/ti", SIGNED_ONLY, "generate")
    video = _get(plugin, path).json()["videos"][0]
    url, expires = video["record"]["video_url"], video["record"]["video_url_expires"]
    assert url and expires and video["stored"] is None
    assert video["source"] is None, f"a link that expired at {expires} is offered to play"
    assert requests.get(url, timeout=30).status_code in (401, 403, 404, 410)  # the emulator agrees
    assert "expired" in video["notice"] and "no stored copy" in video["notice"]
    page = _get(plugin, _ti_path(plugin, "ti", SIGNED_ONLY, "generate")).text
    assert "<video" not in page and "The video link expired" in page
    media = _get(plugin, _ti_path(plugin, "media/ti", SIGNED_ONLY, "generate", "/0/video"))
    assert media.status_code == 404 and "no stored copy" in media.json()["detail"]


def test_recorded_paths_outside_videos_are_never_served(plugin: VideoPluginStack) -> None:
    """A task recorded a secret, traversals, a symlink named .mp4 and a file outside the roots."""
    videos = _get(plugin, _ti_path(plugin, "api/ti", HOSTILE, "record_hostile_paths")).json()["videos"]
    assert len(videos) == 6 and all(v["source"] is None and v["stored"] is None for v in videos)
    for index in range(6):
        for kind in ("video", "poster"):
            resp = _get(
                plugin, _ti_path(plugin, "media/ti", HOSTILE, "record_hostile_paths", f"/{index}/{kind}")
            )
            assert resp.status_code == 404, (index, kind, resp.text[:200])
            assert PASSWD_LINE not in resp.text
    assert (plugin.outside_dir / "outside.mp4").is_file()  # it exists; only the roots keep it out


class _Document(HTMLParser):
    """The elements of a page and its text outside scripts and styles, entities decoded as a browser does."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text = ""
        self._raw = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._raw += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._raw -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        self.text += "" if self._raw else data


def test_a_hostile_prompt_arrives_as_text(plugin: VideoPluginStack) -> None:
    """The hostile DAG's results (one typed, five without a kind) carry markup as their prompt."""
    videos = _get(plugin, _ti_path(plugin, "api/ti", HOSTILE, "record_hostile_paths")).json()["videos"]
    assert [v["record"]["prompt"] for v in videos] == [HOSTILE_PROMPT] * 6
    resp = _get(plugin, _ti_path(plugin, "ti", HOSTILE, "record_hostile_paths"))
    assert resp.status_code == 200 and HOSTILE_PROMPT not in resp.text
    page = _Document(resp.text)
    assert page.text.count(HOSTILE_PROMPT) == 6
    assert "img" not in page.tags and page.tags.count("script") == 2  # the page's own two scripts


def test_traversal_in_the_request_path_reaches_no_file(plugin: VideoPluginStack) -> None:
    run = quote(plugin.run_id(ALPHA), safe="")
    download = f"/gptproto/media/ti/{ALPHA}/{run}/download"
    attempts = [
        "/gptproto/media/event/1/../../../../../../etc/passwd",
        "/gptproto/media/event/..%2F..%2F..%2Fetc%2Fpasswd/video",
        "/gptproto/media/event/1/..%2F..%2F..%2Fetc%2Fpasswd",
        f"{download}/0/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        f"{download}/..%2F..%2F..%2Fetc%2Fpasswd/video",
        f"/gptproto/media/ti/{ALPHA}/..%2F..%2F..%2Fetc/download/0/video",
        f"{download}/0/../../../../../../../etc/passwd",
    ]
    for raw in attempts:
        status, body = _raw_get(plugin, raw)
        assert status in (404, 422), (raw, status, body[:200])
        assert PASSWD_LINE.encode() not in body
    # A path in the query is ignored: the file is always the one the task recorded.
    status, body = _raw_get(plugin, f"{download}/0/video?path=/etc/passwd&uri=/etc/passwd")
    assert status == 200 and body[4:8] == b"ftyp"


def test_api_key_appears_nowhere(plugin: VideoPluginStack) -> None:
    key = plugin.emulator.api_key
    assert key
    bodies = [_get(plugin, path) for path in _all_endpoints(plugin)]
    bodies += [
        _get(plugin, _ti_path(plugin, kind, dag, task))
        for kind in ("ti", "api/ti")
        for dag, task in ((ALPHA, "generate"), (SIGNED_ONLY, "generate"), (HOSTILE, "record_hostile_paths"))
    ]
    for resp in bodies:
        assert key.encode() not in resp.content and key not in str(resp.headers)
    assert key not in plugin.stack.log_path("api-server").read_text(errors="replace")
