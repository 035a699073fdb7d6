"""Join the shots of a storyboard into one MP4, streamed (one shot open at a time), with PyAV.

Packets are copied with shifted timestamps when every shot has the same codec, settings, size and
rate; otherwise every frame is re-encoded with libx264 at the first shot's size and rate.
``drop_shared_frames`` drops each shot's last frame but the final one's (the next shot starts from
it); a copy drops it only when it is also the last packet decoded (no B-frames past it), and the
result names the shots where it was kept. Only the video stream is carried.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal, TypeVar

import av
from av.video.stream import VideoStream

from airflow_provider_gptproto.exceptions import GPTProtoStitchError

StitchMethod = Literal["copy", "reencode"]
_T = TypeVar("_T")


@dataclass(frozen=True)
class ShotSpan:
    """Where one shot sits in the stitched video, in seconds, and how many of its frames it kept."""

    index: int
    start: float
    end: float
    frames: int
    dropped_shared_frame: bool


@dataclass(frozen=True)
class StitchResult:
    """What :func:`stitch` did: the method, why, and each shot's span."""

    method: StitchMethod
    reason: str
    shots: list[ShotSpan]
    width: int
    height: int
    fps: Fraction
    streams_left_out: int = 0
    kept_shared_frames: list[int] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.shots[-1].end if self.shots else 0.0


@dataclass(frozen=True)
class _Shape:
    codec: str
    width: int
    height: int
    rate: Fraction
    extradata: bytes | None
    pix_fmt: str | None


def _shape(stream: VideoStream) -> _Shape:
    ctx = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        raise GPTProtoStitchError(f"{stream.container.name}: the video stream has no frame rate")
    return _Shape(ctx.name, ctx.width, ctx.height, Fraction(rate), ctx.extradata, ctx.pix_fmt)


def _video_stream(container: av.container.InputContainer, path: str) -> VideoStream:
    if not container.streams.video:
        raise GPTProtoStitchError(f"{path}: no video stream to stitch")
    return container.streams.video[0]


def _open(path: str | Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except av.FFmpegError as exc:
        raise GPTProtoStitchError(f"{path}: not a readable video ({exc.strerror})") from exc


def _difference(first: _Shape, shape: _Shape) -> str | None:
    """What keeps a shot from being copied after the first one, or None."""
    for what, mine, theirs in (
        ("codec", shape.codec, first.codec),
        ("size", (shape.width, shape.height), (first.width, first.height)),
        ("frame rate", shape.rate, first.rate),
        ("codec settings", shape.extradata, first.extradata),
        ("pixel format", shape.pix_fmt, first.pix_fmt),
    ):
        if mine != theirs:
            return what
    return None


class _NotCopyable(Exception):
    def __init__(self, first: _Shape, reason: str) -> None:
        super().__init__(reason)
        self.first, self.reason = first, reason


def stitch(
    paths: Sequence[str | Path], output: str | Path, *, drop_shared_frames: bool = False
) -> StitchResult:
    """Write ``paths`` one after another into the MP4 ``output`` (a local file, overwritten).

    Copying is tried first and each shot is opened once (opening dominates the cost of a copy);
    the first shot that does not match the first one switches to re-encoding, from the start.

    :param paths: the shots' local MP4 files, in order; at least one.
    :param output: where the stitched MP4 goes; removed again if stitching fails.
    :param drop_shared_frames: drop each shot's last frame but the final shot's, because the next
        shot starts from it (continuity ``"last_frame"``).
    """
    if not paths:
        raise GPTProtoStitchError("Nothing to stitch: no shots")
    method: StitchMethod = "copy"
    reason = "every shot has the same codec, settings, size and frame rate"
    kept: list[int] = []
    try:
        try:
            with av.open(str(output), mode="w", format="mp4") as out:
                spans, kept, left_out, first = _copy(paths, out, drop_shared_frames)
        except _NotCopyable as mismatch:
            method, reason, first = "reencode", mismatch.reason, mismatch.first
            with av.open(str(output), mode="w", format="mp4") as out:
                spans, left_out = _reencode(paths, out, first, drop_shared_frames)
    except BaseException:
        Path(output).unlink(missing_ok=True)  # never leave half a video behind
        raise
    return StitchResult(method, reason, spans, first.width, first.height, first.rate, left_out, kept)


def _copy(
    paths: Sequence[str | Path], out: av.container.OutputContainer, drop: bool
) -> tuple[list[ShotSpan], list[int], int, _Shape]:
    """Remux packets; each shot's timestamps move by the length of what came before."""
    spans: list[ShotSpan] = []
    kept: list[int] = []
    left_out = 0
    offset = Fraction(0)  # seconds
    first: _Shape | None = None
    out_stream: VideoStream | None = None
    for index, path in enumerate(paths):
        with _open(path) as container:
            stream = _video_stream(container, str(path))
            shape = _shape(stream)
            if first is None or out_stream is None:
                first, out_stream = shape, out.add_stream_from_template(stream)
            elif what := _difference(first, shape):
                raise _NotCopyable(first, f"shot {index} differs from shot 0 in {what}")
            left_out += len(container.streams) > 1
            tb = stream.time_base or Fraction(1, 90000)
            frame_ticks = 1 / (shape.rate * tb)
            shift = round(offset / tb)
            last = index == len(paths) - 1
            frames, end_ticks, dropped = 0, 0, False
            for packet, is_final in _with_last(p for p in container.demux(stream) if p.size):
                pts = packet.pts if packet.pts is not None else packet.dts
                if is_final and drop and not last:
                    if pts is not None and pts >= end_ticks:
                        dropped = True
                        continue
                    kept.append(index)
                if pts is not None:
                    end_ticks = max(end_ticks, pts + (packet.duration or round(frame_ticks)))
                packet.pts = None if packet.pts is None else packet.pts + shift
                packet.dts = None if packet.dts is None else packet.dts + shift
                packet.stream = out_stream
                out.mux(packet)
                frames += 1
            end = offset + end_ticks * tb
            spans.append(ShotSpan(index, float(offset), float(end), frames, dropped))
            offset = end
    assert first is not None  # paths is not empty
    return spans, kept, left_out, first


def _with_last(items: Iterator[_T]) -> Iterator[tuple[_T, bool]]:
    """Each item with whether it is the last one: one item is held back, never more."""
    try:
        previous = next(items)
    except StopIteration:
        return
    for item in items:
        yield previous, False
        previous = item
    yield previous, True


def _reencode(
    paths: Sequence[str | Path], out: av.container.OutputContainer, first: _Shape, drop: bool
) -> tuple[list[ShotSpan], int]:
    """Decode every shot, scale to the first shot's size, encode once at the first shot's rate."""
    encoder = out.add_stream("libx264", rate=first.rate)
    encoder.width, encoder.height, encoder.pix_fmt = first.width, first.height, "yuv420p"
    encoder.options = {"preset": "veryfast"}
    spans: list[ShotSpan] = []
    left_out = 0
    written = 0
    for index, path in enumerate(paths):
        start = written
        with _open(path) as container:
            stream = _video_stream(container, str(path))
            left_out += len(container.streams) > 1
            last = index == len(paths) - 1
            dropped = False
            for frame, is_final in _with_last(iter(container.decode(stream))):
                if is_final and drop and not last:
                    dropped = True
                    continue
                scaled = frame.reformat(width=first.width, height=first.height, format="yuv420p")
                scaled.pts, scaled.time_base = written, 1 / first.rate
                out.mux(encoder.encode(scaled))
                written += 1
        spans.append(
            ShotSpan(index, float(start / first.rate), float(written / first.rate), written - start, dropped)
        )
    out.mux(encoder.encode(None))
    return spans, left_out


def chapters_vtt(titles: Sequence[str], spans: Sequence[ShotSpan]) -> str:
    """A WebVTT chapters track: one cue per shot, titled (one line, no cue-breaking arrows)."""
    cues = ["WEBVTT", ""]
    for title, span in zip(titles, spans, strict=True):
        text = " ".join(title.split()).replace("-->", "->") or f"Shot {span.index + 1}"
        cues += [f"{span.index + 1}", f"{_vtt_time(span.start)} --> {_vtt_time(span.end)}", text, ""]
    return "\n".join(cues)


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"
