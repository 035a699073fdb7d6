"""The plugin's HTML: escaping, the player's source, paging and the top-window links."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_provider_gptproto.plugins import pages
from airflow_provider_gptproto.plugins.records import VideoRecord

HOSTILE = '<script>alert("x")</script>'


def _record(**kwargs: object) -> VideoRecord:
    return VideoRecord("dag<1>", "manual__2026-01-01T00:00:00+00:00", "download", **kwargs)  # type: ignore[arg-type]


def test_video_tab_escapes_everything_and_shows_metadata() -> None:
    record = _record(prompt=HOSTILE, model="m", seed=7, bytes=10, sha256="ab" * 32, usage={"total_tokens": 5})
    html = pages.video_tab(f"download {HOSTILE}", [(record, '/media/x?a=1&b="2"', "/media/x", "")])
    assert HOSTILE not in html and "&lt;script&gt;" in html
    assert '<video controls preload="auto" src="/media/x?a=1&amp;b=&#34;2&#34;"></video>' in html
    for text in (
        "Prompt",
        "Model",
        "Seed",
        "Bytes",
        "SHA-256",
        "total_tokens: 5",
        "Download the stored file",
    ):
        assert text in html


def test_video_tab_without_a_source_says_why() -> None:
    html = pages.video_tab("generate", [(_record(), None, None, "The video link expired (...)")])
    assert "<video" not in html and "The video link expired" in html
    assert "has no GPTProto video" in pages.video_tab("other", [])


def test_gallery_cards_pager_and_filter() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    cards = [(_record(prompt=HOSTILE, event_id=9, timestamp=when), "/gptproto/media/event/9/poster", None)]
    html = pages.gallery("/base", cards, ["dag<1>", "other"], "other", 24, 24, 60)
    assert HOSTILE not in html
    assert '<img src="/gptproto/media/event/9/poster"' in html
    assert 'href="/base/dags/dag%3C1%3E/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00"' in html
    assert "data-top" in html and "window.top.document" in html
    assert "2026-01-02 03:04:05 UTC" in html
    assert '<option value="other" selected>' in html
    assert 'rel="prev" href="?offset=0&amp;limit=24&amp;dag_id=other"' in html
    assert 'rel="next" href="?offset=48&amp;limit=24&amp;dag_id=other"' in html
    assert "25-48 of 60" in html
    empty = pages.gallery("", [], [], None, 0, 24, 0)
    assert "No videos yet." in empty and "rel=" not in empty


def test_a_card_plays_its_stored_video_else_opens_the_tasks_video_tab() -> None:
    stored = _record(prompt="A fox", event_id=9)
    batch = _record(prompt="Batch: 2 of 2 videos", event_id=10, map_index=3)
    html = pages.gallery(
        "/base",
        [(stored, "/m/9/poster", "/m/9/video"), (batch, None, None)],
        ["dag<1>"],
        None,
        0,
        24,
        2,
    )
    assert '<button type="button" class="poster" data-video="/m/9/video"' in html
    assert 'aria-label="Play the video: A fox"' in html
    assert '<dialog id="player"' in html and "showModal()" in html
    tab = "/base/dags/dag%3C1%3E/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00/tasks/download/mapped/3"
    assert f'<a class="poster" data-top href="{tab}/plugin/gptproto-video"' in html
    # One page: both ends of the pager shown, disabled, like Airflow's pagination.
    assert html.count('<span class="button" aria-disabled="true">') == 2 and "1-2 of 2" in html
