"""Rendering a small but real MP4 (H.264, yuv420p) per task, once, cached on disk.

Frames show the prompt and the seed so a person looking at a DAG's output can tell which
task made it. A clip given a first-frame image starts on exactly that image and cross-fades into
its own frames over its first second, so chained clips join without a jump at the cut.
Encoding is single-threaded with ``fflags=+bitexact`` so the same request and seed always give
the same bytes; a low frame rate keeps a 5 s 768x768 clip well under a second of CPU on a small
machine. Renders run on one worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import colorsys
import hashlib
import os
import shutil
import tempfile
import textwrap
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont

RENDER_VERSION = 1


@dataclass(frozen=True)
class RenderJob:
    """Everything that decides the pixels (and so the bytes) of one video."""

    width: int
    height: int
    seconds: float
    fps: int
    prompt: str
    seed: int
    model: str
    watermark: bool = False
    first_frame: str | None = None  # a PNG named by its content hash (frames.py), so part of the key

    @property
    def key(self) -> str:
        text = repr((RENDER_VERSION, self))
        return hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Rendered:
    mp4: Path
    png: Path


def _background(seed: int) -> tuple[int, int, int]:
    hue = (seed * 0.618033988749895) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.55, 0.45)
    return int(red * 255), int(green * 255), int(blue * 255)


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy word wrap by measured pixel width."""
    average = max(1.0, font.getlength("abcdefghijklmnopqrstuvwxyz") / 26)
    return textwrap.wrap(text, width=max(8, int(width / average))) or [""]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


@dataclass(frozen=True)
class _Layout:
    """Font sizes and positions shared by the static and the moving parts of a frame."""

    margin: int
    big: ImageFont.FreeTypeFont | ImageFont.ImageFont
    small: ImageFont.FreeTypeFont | ImageFont.ImageFont
    line_height: int
    bar_height: int
    bar_top: int
    stamp_top: int
    footer_top: int

    @classmethod
    def of(cls, job: RenderJob) -> _Layout:
        short = min(job.width, job.height)
        small_size = max(12, short // 28)
        line_height = int(small_size * 1.4)
        bar_height = max(6, job.height // 40)
        bar_top = job.height - 2 * bar_height
        stamp_top = bar_top - bar_height - line_height
        return cls(
            margin=max(8, short // 24),
            big=_font(max(14, short // 16)),
            small=_font(small_size),
            line_height=line_height,
            bar_height=bar_height,
            bar_top=bar_top,
            stamp_top=stamp_top,
            footer_top=stamp_top - line_height,
        )


def _base_frame(job: RenderJob, layout: _Layout) -> Image.Image:
    """The static part of every frame: background, seed, prompt, model and size."""
    image = Image.new("RGB", (job.width, job.height), _background(job.seed))
    draw = ImageDraw.Draw(image)
    margin, small = layout.margin, layout.small
    draw.text((margin, margin), f"seed {job.seed}", font=layout.big, fill=(255, 255, 255))
    y = margin + int(max(14, min(job.width, job.height) // 16) * 1.6)
    max_lines = max(1, (layout.footer_top - y) // layout.line_height - 1)
    lines = _wrap(job.prompt, small, job.width - 2 * margin)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1][:-3] + "..."]
    for line in lines:
        draw.text((margin, y), line, font=small, fill=(240, 240, 240))
        y += layout.line_height
    footer = f"{job.model}  {job.width}x{job.height}  {job.seconds:g}s  GPTProto emulator"
    draw.text((margin, layout.footer_top), footer, font=small, fill=(200, 200, 200))
    if job.watermark:
        mark = "AI generated"
        draw.text(
            (job.width - margin - small.getlength(mark), margin), mark, font=small, fill=(255, 255, 255)
        )
    return image


def render(job: RenderJob, mp4_path: Path, png_path: Path) -> None:
    """Encode the video and its last frame; files appear atomically (temp file + rename)."""
    frame_count = max(1, round(job.seconds * job.fps))
    layout = _Layout.of(job)
    base = _base_frame(job, layout)
    start = _first_frame(job)
    bar = layout.bar_height
    tmp_mp4 = mp4_path.with_suffix(f".{os.getpid()}.tmp.mp4")
    container = av.open(str(tmp_mp4), mode="w", format="mp4", options={"fflags": "+bitexact"})
    try:
        stream = container.add_stream("libx264", rate=job.fps)
        stream.width, stream.height, stream.pix_fmt = job.width, job.height, "yuv420p"
        stream.options = {"preset": "ultrafast", "threads": "1"}
        stream.codec_context.thread_count = 1
        image = base
        for index in range(frame_count):
            image = base.copy()
            draw = ImageDraw.Draw(image)
            left = int(index / frame_count * (job.width - bar * 4))
            draw.rectangle((left, layout.bar_top, left + bar * 4, layout.bar_top + bar), fill=(255, 210, 0))
            stamp = f"t={index / job.fps:05.2f}s  frame {index + 1}/{frame_count}"
            draw.text((layout.margin, layout.stamp_top), stamp, font=layout.small, fill=(255, 255, 255))
            if start is not None:
                image = Image.blend(start, image, min(1.0, index / job.fps))  # frame 0 is the image
            frame = av.VideoFrame.from_image(image)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    finally:
        container.close()
    tmp_png = png_path.with_suffix(f".{os.getpid()}.tmp.png")
    image.save(tmp_png, format="PNG")
    os.replace(tmp_png, png_path)
    os.replace(tmp_mp4, mp4_path)


def _first_frame(job: RenderJob) -> Image.Image | None:
    if job.first_frame is None:
        return None
    with Image.open(job.first_frame) as image:
        return image.convert("RGB").resize((job.width, job.height))


class VideoCache:
    """Renders each distinct job once, on one worker thread, into a cache directory."""

    def __init__(self, directory: str | None = None) -> None:
        self._owned = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="gptproto-emulator-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gptproto-render")
        self._pending: dict[str, Future[Rendered]] = {}
        self.renders = 0

    def _paths(self, job: RenderJob) -> Rendered:
        return Rendered(self.directory / f"{job.key}.mp4", self.directory / f"{job.key}.png")

    def _render(self, job: RenderJob) -> Rendered:
        paths = self._paths(job)
        if not paths.mp4.exists():
            render(job, paths.mp4, paths.png)
            self.renders += 1
        return paths

    def submit(self, job: RenderJob) -> Future[Rendered]:
        """Start (or join) the render of ``job``; cheap when it is already on disk."""
        paths = self._paths(job)
        if paths.mp4.exists() and paths.png.exists():
            done: Future[Rendered] = Future()
            done.set_result(paths)
            return done
        future = self._pending.get(job.key)
        if future is None or (future.done() and future.exception() is not None):
            future = self._executor.submit(self._render, job)
            self._pending[job.key] = future
        return future

    async def get(self, job: RenderJob) -> Rendered:
        return await asyncio.wrap_future(self.submit(job))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)
