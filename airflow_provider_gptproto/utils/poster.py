"""Poster frames for the gallery: one JPEG (PyAV's MJPEG) from a stored video, written next to it.
PyAV (the ``ui`` extra) is optional: without it only the poster is missing.
"""

from __future__ import annotations

import io
import logging
from typing import IO, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_gptproto.storage import write_bytes_atomically

POSTER_KEY = "poster_uri"  # in the download result and the asset event's extra
POSTER_SUFFIX = ".jpg"
POSTER_WIDTH = 480  # enough for a gallery card; about 20-40 KB
POSTER_AT_SECONDS = 1.0  # past a fade-in, but inside even a 1 s clip (capped at a fifth of the length)


def poster_path(video_uri: str) -> ObjectStoragePath:
    """Where the poster of a stored video goes: same folder, same name, ``.jpg``."""
    return ObjectStoragePath(video_uri).with_suffix(POSTER_SUFFIX)


def store_poster(video_uri: str, log: logging.Logger | Any) -> dict[str, str]:
    """Write the poster next to the video; ``{"poster_uri": ...}``, or ``{}`` (never an error: a
    missing poster only costs the gallery its picture)."""
    try:
        import av
    except ImportError:
        log.info("No poster frame: PyAV is not installed (pip install 'airflow-provider-gptproto[ui]')")
        return {}
    target = poster_path(video_uri)
    try:
        with ObjectStoragePath(video_uri).open("rb") as source:
            jpeg = extract_poster(source)
        write_bytes_atomically(jpeg, target)
    except (av.FFmpegError, OSError, ValueError) as exc:
        log.warning("No poster frame for %s: %s", video_uri, exc)
        return {}
    log.info("Poster frame of %s saved to %s (%d bytes)", video_uri, target, len(jpeg))
    return {POSTER_KEY: str(target)}


def extract_poster(source: IO[bytes], width: int = POSTER_WIDTH) -> bytes:
    """JPEG bytes of the frame at about ``POSTER_AT_SECONDS`` (the last one for a shorter clip)."""
    import av

    with av.open(source, "r") as container:
        if not container.streams.video:
            raise ValueError("the file has no video stream")
        stream = container.streams.video[0]
        length = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
        wanted = min(POSTER_AT_SECONDS, length / 5) if length else 0.0
        chosen = None
        for frame in container.decode(stream):
            chosen = frame
            if frame.time is not None and frame.time >= wanted:
                break
        if chosen is None:
            raise ValueError("the video stream has no frames")
        height = max(2, round(chosen.height * width / chosen.width / 2) * 2)
        picture = chosen.reformat(width=width, height=height, format="yuvj420p")

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mjpeg") as output:
        encoder = output.add_stream("mjpeg", rate=1)
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
        for packet in (*encoder.encode(picture), *encoder.encode(None)):
            output.mux(packet)
    return buffer.getvalue()
