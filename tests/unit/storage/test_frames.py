"""One frame as JPEG: the last one at full size (a storyboard shot's start), or a scaled poster."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from airflow_provider_gptproto.emulator.video import RenderJob, render
from airflow_provider_gptproto.exceptions import GPTProtoStitchError
from airflow_provider_gptproto.storage.frames import frame_jpeg


def _clip(folder: Path, name: str, size: tuple[int, int], seconds: float) -> Path:
    mp4 = folder / f"{name}.mp4"
    render(RenderJob(size[0], size[1], seconds, 8, name, 7, "model"), mp4, mp4.with_suffix(".png"))
    return mp4


def _pictures(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def _difference(a: Image.Image, b: Image.Image) -> float:
    """The largest mean absolute difference of a channel, 0..255."""
    return max(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean)


def test_the_last_frame_as_jpeg_is_the_clips_last_picture(tmp_path: Path) -> None:
    clip = _clip(tmp_path, "ending", (160, 96), 1.0)
    with clip.open("rb") as video:
        jpeg = frame_jpeg(video)
    last = _pictures(clip)[-1]
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG" and image.size == last.size
    assert _difference(image, last) < 4
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(GPTProtoStitchError, match="not a readable video"):
        frame_jpeg(bad)


def test_a_poster_is_scaled_to_the_videos_aspect_from_about_the_time_asked(tmp_path: Path) -> None:
    clip = _clip(tmp_path, "poster", (1280, 768), 5.0)
    jpeg = frame_jpeg(clip, at_seconds=1.0, width=480)
    out = tmp_path / "poster.jpg"
    out.write_bytes(jpeg)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("mjpeg", 480, 288)
    pictures = [p.resize((480, 288)) for p in _pictures(clip)]
    image = Image.open(io.BytesIO(jpeg))
    nearest = min(range(len(pictures)), key=lambda i: _difference(image, pictures[i]))
    assert nearest == 8  # the frame at 1.0 s (8 fps), not the first or the last


def test_a_short_clip_gives_a_frame_a_fifth_of_the_way_in(tmp_path: Path) -> None:
    clip = _clip(tmp_path, "short", (160, 96), 2.0)  # 16 frames: 1.0 s would be past the middle
    image = Image.open(io.BytesIO(frame_jpeg(clip, at_seconds=1.0)))
    pictures = _pictures(clip)
    nearest = min(range(len(pictures)), key=lambda i: _difference(image, pictures[i]))
    assert nearest == 4  # 2.0 s / 5 = 0.4 s: the frame at 0.5 s (the first at or after it)
