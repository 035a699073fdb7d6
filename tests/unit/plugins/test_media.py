"""Which recorded files the plugin agrees to serve (the location always comes from a record)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi import HTTPException

from airflow_provider_gptproto.plugins.locations import local_path
from airflow_provider_gptproto.plugins.media import servable_file
from airflow_provider_gptproto.plugins.records import VideoRecord


def _record(uri: str | None, *, poster: str | None = None, size: int | None = None) -> VideoRecord:
    return VideoRecord("dag", "run", "task", stored_uri=uri, poster_uri=poster, bytes=size)


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    inside = tmp_path / "videos"
    inside.mkdir()
    monkeypatch.setenv("AIRFLOW__GPTPROTO__UI_MEDIA_ROOTS", f" {inside} , /nonexistent-root ")
    return inside


def _refused(record: VideoRecord, kind: str = "video") -> str:
    with pytest.raises(HTTPException) as raised:
        servable_file(record, kind)  # type: ignore[arg-type]
    assert raised.value.status_code == 404
    return str(raised.value.detail)


def test_local_path_forms() -> None:
    assert local_path("/data/v.mp4") == "/data/v.mp4"
    assert local_path("file:///data/a%20b.mp4") == "/data/a b.mp4"
    assert local_path("file://localhost/data/v.mp4") == "/data/v.mp4"
    assert local_path("file://otherhost/data/v.mp4") is None
    assert local_path("s3://bucket/v.mp4") is None
    assert local_path(None) is None and local_path("") is None


def test_a_recorded_video_inside_the_roots_is_served(roots: Path) -> None:
    video = roots / "clip.mp4"
    video.write_bytes(b"0123456789")
    poster = roots / "clip.jpg"
    poster.write_bytes(b"\xff\xd8\xff")
    record = _record(f"file://{video}", poster=str(poster), size=10)
    assert servable_file(record, "video") == (str(video), "video/mp4")
    assert servable_file(record, "poster") == (str(poster), "image/jpeg")


def test_refusals(roots: Path, tmp_path: Path) -> None:
    video = roots / "clip.mp4"
    video.write_bytes(b"0123456789")
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"0123456789")
    disguised = roots / "disguised.mp4"
    os.symlink("/etc/passwd", disguised)
    escaping_link = roots / "escape.mp4"
    os.symlink(outside, escaping_link)

    assert "no stored copy" in _refused(_record(None))
    assert "not on a local filesystem" in _refused(_record("s3://bucket/clip.mp4"))
    assert "not a video" in _refused(_record("/etc/passwd"))
    assert "not a video" in _refused(_record(f"{roots}/../../../../etc/passwd"))
    assert "not a video" in _refused(_record(str(disguised)))  # the real path is /etc/passwd
    assert "not a video" in _refused(_record("videos/clip.mp4"))  # relative: no
    assert "not a poster" in _refused(_record(None, poster=str(video)), kind="poster")
    assert "outside" in _refused(_record(str(outside)))
    assert "outside" in _refused(_record(str(escaping_link)))
    assert "outside" in _refused(_record(f"{roots}/../outside.mp4"))
    assert "gone" in _refused(_record(str(roots / "missing.mp4")))
    assert "changed" in _refused(_record(str(video), size=11))


def test_without_roots_any_recorded_video_file_is_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__GPTPROTO__UI_MEDIA_ROOTS", raising=False)
    video = tmp_path / "anywhere.webm"
    video.write_bytes(b"x")
    assert servable_file(_record(str(video)), "video") == (str(video), "video/webm")
    assert "not a video" in _refused(_record("/etc/passwd"))
