"""One frame of a video as a JPEG (PyAV's MJPEG): the gallery's poster, and the last frame a storyboard
shot's successor starts from when the API reports no ``last_frame_url``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO

from airflow_provider_gptproto.exceptions import GPTProtoStitchError


def frame_jpeg(
    source: str | Path | IO[bytes], *, at_seconds: float | None = None, width: int | None = None
) -> bytes:
    """JPEG bytes of one frame; raises ImportError without PyAV (an optional extra).

    :param source: a local path or an open binary file.
    :param at_seconds: the frame's time, at most a fifth of the way in (a short clip's frame is past a
        fade-in too; the first frame when the length is unknown). Default None: the last frame.
    :param width: scaled to this width, the aspect kept (even height). Default None: full size.
    :raises GPTProtoStitchError: not a readable video, or one without frames.
    """
    import av

    try:
        with av.open(str(source) if isinstance(source, Path) else source, "r") as container:
            if not container.streams.video:
                raise GPTProtoStitchError(f"{source}: the file has no video stream")
            stream = container.streams.video[0]
            duration, base = stream.duration, stream.time_base
            length = float(duration * base) if duration and base else 0.0
            wanted = None if at_seconds is None else min(at_seconds, length / 5)
            chosen = None
            for chosen in container.decode(stream):
                if wanted is not None and chosen.time is not None and chosen.time >= wanted:
                    break
            if chosen is None:
                raise GPTProtoStitchError(f"{source}: the video has no frame")
        height = max(2, round(chosen.height * width / chosen.width / 2) * 2) if width else chosen.height
        width = width or chosen.width
        # Through RGB, as a viewer sees the frame: straight to full-range YUV shifts the colours.
        picture = chosen.reformat(width, height, "rgb24").reformat(format="yuvj420p")
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="mjpeg") as output:
            encoder = output.add_stream("mjpeg", rate=1)
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
            encoder.options = {"qmax": "2"}  # fine quantisation: a shot starts from this picture
            for packet in (*encoder.encode(picture), *encoder.encode(None)):
                output.mux(packet)
    except av.FFmpegError as exc:
        raise GPTProtoStitchError(f"{source}: not a readable video ({exc.strerror})") from exc
    return buffer.getvalue()
