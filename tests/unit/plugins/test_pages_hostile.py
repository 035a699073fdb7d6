"""Hostile text in every field a DAG, a task or the API controls reaches the pages as text, never markup.

Each page is parsed back (html.parser decodes entities as a browser does): the hostile strings must
come back whole as text or attribute values, and the document must hold no element or event
handler beyond the page's own.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_gptproto.plugins import pages
from airflow_provider_gptproto.plugins.records import VideoRecord, event_record, read_result

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    '"><script>alert(1)</script>',
    "'><svg onload=alert(1)>",
    '<img src=x onerror=alert(1)> "><script>alert(1)</script>',  # the ui_videos_hostile DAG's prompt
]
PAGE_TAGS = {
    "html", "head", "meta", "title", "style", "script", "body", "h1", "section", "div", "video", "p", "a",
    "dl", "dt", "dd", "form", "label", "select", "option", "noscript", "button", "article", "img", "span",
    "time", "nav", "dialog", "fieldset", "legend", "input",
}  # fmt: skip


class _Parsed(HTMLParser):
    """Elements, their attributes and the document's text (outside scripts and styles)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self._raw = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._raw += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._raw -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._raw:
            self.texts.append(data)

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.elements if tag == name]

    def handlers(self) -> list[tuple[str, str, str | None]]:
        return [(t, k, v) for t, attrs in self.elements for k, v in attrs.items() if k.startswith("on")]


def _only_the_pages_own_markup(page: _Parsed, images: set[str]) -> None:
    assert {tag for tag, _ in page.elements} <= PAGE_TAGS
    assert len(page.tags("script")) == 2  # the theme sync in <head>, the page's scripts in <body>
    assert {attrs.get("src") for attrs in page.tags("img")} <= images
    assert page.handlers() in ([], [("select", "onchange", "this.form.submit()")])


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_video_tab_shows_hostile_fields_as_text(hostile: str) -> None:
    record = VideoRecord(
        f"dag {hostile}",
        f"run {hostile}",
        f"task {hostile}",
        prompt=hostile,
        model=f"model {hostile}",
        gptproto_task_id=f"id {hostile}",
        stored_uri=f"/out/{hostile}.mp4",
        usage={hostile: 1},
    )
    notice = f"The video link expired ({hostile})"
    html = pages.video_tab(
        f"task {hostile} (GPTProtoDownloadVideoOperator)",
        [(record, None, None, notice), (record, f"/media/{hostile}", f"/media/{hostile}", notice)],
    )
    page = _Parsed(html)

    _only_the_pages_own_markup(page, images=set())
    text = "".join(page.texts)
    for field in (f"task {hostile} (GPTProtoDownloadVideoOperator)", hostile, f"model {hostile}", notice):
        assert field in text
    assert f"id {hostile}" in text and f"/out/{hostile}.mp4" in text and f"{hostile}: 1" in text
    assert [attrs["src"] for attrs in page.tags("video")] == [f"/media/{hostile}"]
    assert [attrs["href"] for attrs in page.tags("a")] == [f"/media/{hostile}"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_gallery_shows_hostile_fields_as_text(hostile: str) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    playable = VideoRecord(
        f"dag {hostile}", f"run {hostile}", "generate", prompt=hostile, event_id=1, timestamp=when
    )
    tab_only = VideoRecord(f"dag {hostile}", "run", f"task {hostile}", prompt=f"second {hostile}", event_id=2)
    html = pages.gallery(
        f"/base{hostile}",
        [(playable, f"/poster{hostile}", f"/video{hostile}"), (tab_only, None, None)],
        [f"dag {hostile}", "other"],
        f"dag {hostile}",
        24,
        24,
        60,
    )
    page = _Parsed(html)

    _only_the_pages_own_markup(page, images={f"/poster{hostile}"})
    text = "".join(page.texts)
    for field in (hostile, f"second {hostile}", f"dag {hostile}", f"run {hostile}"):
        assert field in text
    [button] = [attrs for attrs in page.tags("button") if attrs.get("class") == "poster"]
    assert button["data-video"] == f"/video{hostile}" and button["data-caption"] == hostile
    assert button["aria-label"] == f"Play the video: {hostile}"
    selected = [attrs["value"] for attrs in page.tags("option") if "selected" in attrs]
    assert selected == [f"dag {hostile}"]
    # Ids inside links are URL-quoted; only the base path (the deployment's own) is taken as is.
    assert all(attrs["href"].startswith(f"/base{hostile}/dags/dag%20") for attrs in page.tags("a")[:4])
    [tab_link] = [attrs for attrs in page.tags("a") if attrs.get("class") == "poster"]
    dag, task = quote(f"dag {hostile}", safe=""), quote(f"task {hostile}", safe="")
    assert tab_link["href"] == f"/base{hostile}/dags/{dag}/runs/run/tasks/{task}/plugin/gptproto-video"
    assert tab_link["aria-label"] == f"Open the task's Video tab: second {hostile}"


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_prompt_in_recorded_results_reaches_the_pages_as_text(hostile: str) -> None:
    """From the results as the ui_videos_hostile DAG records them (one typed, one without a kind) to the
    Video tab, and from a download's asset event to the gallery."""
    recorded: list[dict[str, Any]] = [
        {"kind": "download", "task_id": "hostile-1", "uri": "/etc/passwd", "prompt": hostile},
        {"task_id": "hostile-2", "uri": "s3://bucket/../../etc/passwd.mp4", "prompt": hostile},
    ]
    base = VideoRecord("ui_videos_hostile", "run", "record_hostile_paths")
    records = [record for result in recorded for record in read_result(result, base)]
    tab = _Parsed(pages.video_tab("record_hostile_paths (@task)", [(r, None, None, "") for r in records]))
    event = SimpleNamespace(
        extra={"kind": "download", "task_id": "t1", "uri": "/out/t1.mp4", "prompt": hostile},
        source_dag_id="ui_videos_hostile",
        source_run_id="run",
        source_task_id="download",
        source_map_index=-1,
        id=1,
        timestamp=None,
    )
    card = event_record(event)  # type: ignore[arg-type]
    gallery = _Parsed(
        pages.gallery("/base", [(card, "/poster", "/video")], ["ui_videos_hostile"], None, 0, 24, 1)
    )

    _only_the_pages_own_markup(tab, images=set())
    assert [r.prompt for r in records] == [hostile, hostile] and "".join(tab.texts).count(hostile) == 2
    _only_the_pages_own_markup(gallery, images={"/poster"})
    assert hostile in "".join(gallery.texts)
    [button] = [attrs for attrs in gallery.tags("button") if attrs.get("class") == "poster"]
    assert button["data-caption"] == hostile


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_review_page_shows_hostile_fields_as_text(hostile: str) -> None:
    """Every value of the review XCom and the HITL detail (any task may write them) stays text."""
    take = {
        "label": f"take {hostile}",
        "source": f"/media/{hostile}",
        "poster": None,
        "notice": "",
        "fields": {"Seed": hostile, "Usage": f"{hostile}: 1"},
        "tab_href": f"/tab/{hostile}",
    }
    groups = [
        {"number": 1, "param": f"pick {hostile}", "prompt": hostile, "failed": [], "takes": [take]},
        {"number": 2, "param": None, "prompt": None, "failed": [3], "takes": [{**take, "source": None,
         "notice": f"expired ({hostile})"}]},
    ]  # fmt: skip
    hitl = SimpleNamespace(
        options=[f"Approve {hostile}", "Reject"],
        params={f"pick {hostile}": {"value": f"take {hostile}", "schema": {}, "description": hostile}},
        responded_at=None,
        params_input={},
    )
    page = _Parsed(pages.review(f"task {hostile}", groups, hitl, f"/api/{hostile}", has_review=True))

    _only_the_pages_own_markup(page, images=set())
    text = "".join(page.texts)
    for field in (
        f"Review: task {hostile}",
        f"1. {hostile}",
        f"take {hostile}",
        f"{hostile}: 1",
        "expired (",
    ):
        assert field in text
    [radio] = page.tags("input")
    assert (radio["name"], radio["value"], "checked" in radio) == (f"pick {hostile}", f"take {hostile}", True)
    assert [b["value"] for b in page.tags("button")] == [f"Approve {hostile}", "Reject"]
    [form] = page.tags("form")
    assert form["data-api"] == f"/api/{hostile}"
    assert json.loads(form["data-params"] or "") == {f"pick {hostile}": f"take {hostile}"}
    assert [v["src"] for v in page.tags("video")] == [f"/media/{hostile}"]
    answered = SimpleNamespace(
        **{**vars(hitl), "responded_at": datetime(2026, 1, 2, tzinfo=timezone.utc)},
        responded_by={"id": "x", "name": hostile},
        chosen_options=[hostile],
    )
    page = _Parsed(pages.review("t", groups, answered, "/api", has_review=True))
    _only_the_pages_own_markup(page, images=set())
    assert f"Answered {hostile} by {hostile} on 2026-01-02 00:00:00 UTC." in "".join(page.texts)


def test_the_pages_environment_escapes_every_value() -> None:
    """Autoescape is on for the whole environment, so a new template cannot forget it."""
    rendered = pages._environment().from_string("<p title='{{ v }}'>{{ v }}</p>").render(v=HOSTILE[1])
    assert "<script>" not in rendered
    assert rendered == "<p title='&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;'>" + (
        "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    )
