"""Stitching shots into one MP4: copied when they match, re-encoded when not, shared frames once."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from airflow_provider_gptproto.emulator.video import RenderJob, render
from airflow_provider_gptproto.exceptions import GPTProtoStitchError
from airflow_provider_gptproto.storage.stitch import ShotSpan, chapters_vtt, stitch

FPS = 8


def _clip(folder: Path, name: str, seconds: float = 1.0, size: tuple[int, int] = (160, 96)) -> Path:
    """A real H.264 clip from the emulator's renderer (no B-frames, like the emulator's videos)."""
    mp4 = folder / f"{name}.mp4"
    render(
        RenderJob(size[0], size[1], seconds, FPS, name, seed=len(name), model="m"),
        mp4,
        mp4.with_suffix(".png"),
    )
    return mp4


def _b_frame_clip(folder: Path, name: str, frames: int = 12) -> Path:
    """A clip whose encoder reorders frames (B-frames), as many real services' videos do."""
    path = folder / f"{name}.mp4"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.options = {"preset": "medium", "bf": "3", "threads": "1"}
        for index in range(frames):
            frame = av.VideoFrame(64, 64, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(index * 20) % 256]) * plane.buffer_size)
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _frames(path: Path) -> tuple[int, float, tuple[int, int]]:
    """Decoded frame count, the stream's duration in seconds, and size; every frame must decode."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        assert stream.duration is not None and stream.time_base is not None
        duration = float(stream.duration * stream.time_base)
        return count, duration, (stream.codec_context.width, stream.codec_context.height)


def test_matching_shots_are_copied_end_to_end(tmp_path: Path) -> None:
    shots = [_clip(tmp_path, f"shot{i}", seconds=1 + i) for i in range(3)]  # 8, 16, 24 frames
    result = stitch(shots, tmp_path / "out.mp4")
    assert result.method == "copy" and "same codec" in result.reason
    assert [(s.start, s.end, s.frames) for s in result.shots] == [(0, 1, 8), (1, 3, 16), (3, 6, 24)]
    count, duration, size = _frames(tmp_path / "out.mp4")
    assert count == 48 and size == (160, 96) and duration == pytest.approx(6.0)
    assert result.duration == 6.0 and result.streams_left_out == 0


def test_shared_frames_show_once(tmp_path: Path) -> None:
    shots = [_clip(tmp_path, f"shot{i}", seconds=1) for i in range(3)]
    result = stitch(shots, tmp_path / "out.mp4", drop_shared_frames=True)
    assert [s.dropped_shared_frame for s in result.shots] == [True, True, False]
    assert [s.frames for s in result.shots] == [7, 7, 8] and result.kept_shared_frames == []
    assert result.shots[1].start == pytest.approx(7 / FPS) and result.duration == pytest.approx(22 / FPS)
    count, duration, _ = _frames(tmp_path / "out.mp4")
    assert count == 22 and duration == pytest.approx(22 / FPS)


def test_a_reordered_last_frame_is_kept_and_reported(tmp_path: Path) -> None:
    shots = [_b_frame_clip(tmp_path, f"b{i}") for i in range(2)]
    with av.open(str(shots[0])) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
    if packets[-1].pts == max(p.pts or 0 for p in packets):
        pytest.skip("this libx264 ends the clip on its last shown frame; nothing is reordered past it")
    result = stitch(shots, tmp_path / "out.mp4", drop_shared_frames=True)
    assert result.method == "copy" and result.kept_shared_frames == [0]
    assert [s.frames for s in result.shots] == [12, 12]
    assert _frames(tmp_path / "out.mp4")[0] == 24


def test_different_sizes_are_reencoded_to_the_first_shot(tmp_path: Path) -> None:
    shots = [_clip(tmp_path, "wide", size=(160, 96)), _clip(tmp_path, "square", size=(96, 96))]
    result = stitch(shots, tmp_path / "out.mp4", drop_shared_frames=True)
    assert result.method == "reencode" and result.reason == "shot 1 differs from shot 0 in size"
    assert [s.frames for s in result.shots] == [7, 8]
    count, duration, size = _frames(tmp_path / "out.mp4")
    assert count == 15 and size == (160, 96) and duration == pytest.approx(15 / FPS)


def test_unreadable_or_missing_shots_are_named(tmp_path: Path) -> None:
    with pytest.raises(GPTProtoStitchError, match="no shots"):
        stitch([], tmp_path / "out.mp4")
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(GPTProtoStitchError, match=r"notes\.mp4: not a readable video"):
        stitch([_clip(tmp_path, "ok"), bad], tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_chapters_are_webvtt_cues_per_shot() -> None:
    spans = [ShotSpan(0, 0.0, 4.875, 39, True), ShotSpan(1, 4.875, 3725.5, 40, False)]
    text = chapters_vtt(["Opening\nshot --> sky", ""], spans)
    assert text == (
        "WEBVTT\n\n"
        "1\n00:00:00.000 --> 00:00:04.875\nOpening shot -> sky\n\n"
        "2\n00:00:04.875 --> 01:02:05.500\nShot 2\n"
    )
