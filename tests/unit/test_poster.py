"""Poster frames: written next to the video, skipped gracefully (the frame itself: storage/test_frames.py)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from airflow_provider_gptproto.emulator.video import RenderJob, render
from airflow_provider_gptproto.utils.poster import POSTER_KEY, store_poster

LOG = logging.getLogger("test.poster")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("poster")
    render(RenderJob(1280, 768, 5.0, 8, "A red fox", 7, "model"), folder / "clip.mp4", folder / "clip.png")
    return folder / "clip.mp4"


def test_store_poster_writes_next_to_the_video(video: Path) -> None:
    result = store_poster(str(video), LOG)
    assert result == {POSTER_KEY: str(video.with_suffix(".jpg"))}
    assert video.with_suffix(".jpg").read_bytes()[:3] == b"\xff\xd8\xff"


def test_without_pyav_the_poster_is_skipped(
    video: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError
    target = video.with_name("other.mp4")
    target.write_bytes(video.read_bytes())
    with caplog.at_level(logging.INFO, logger=LOG.name):
        assert store_poster(str(target), LOG) == {}
    assert "PyAV is not installed" in caplog.text
    assert not target.with_suffix(".jpg").exists()


def test_an_undecodable_file_costs_only_the_poster(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert store_poster(str(broken), LOG) == {}
    assert "No poster frame for" in caplog.text
    assert not broken.with_suffix(".jpg").exists()


def test_the_poster_is_written_whole_through_a_temporary_sibling(video: Path, tmp_path: Path) -> None:
    target = tmp_path / "whole.mp4"
    target.write_bytes(video.read_bytes())
    assert store_poster(str(target), LOG) == {POSTER_KEY: str(target.with_suffix(".jpg"))}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["whole.jpg", "whole.mp4"]  # no .part left


def test_a_failed_poster_write_leaves_no_file_behind(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "full.mp4"
    target.write_bytes(video.read_bytes())

    def disk_full(self: object, *args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("airflow.sdk.ObjectStoragePath.rename", disk_full)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert store_poster(str(target), LOG) == {}
    assert "No space left on device" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.mp4"]  # neither a poster nor a .part
