"""Poster frames for the gallery: one JPEG (``storage.frames``) from a stored video, written next to it.
PyAV (the ``ui`` extra) is optional: without it only the poster is missing.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_gptproto.exceptions import GPTProtoStitchError
from airflow_provider_gptproto.storage import write_bytes_atomically
from airflow_provider_gptproto.storage.frames import frame_jpeg

POSTER_KEY = "poster_uri"  # in the download result and the asset event's extra
POSTER_WIDTH = 480  # enough for a gallery card
POSTER_AT_SECONDS = 1.0  # past a fade-in, but inside even a 1 s clip (capped at a fifth of the length)


def store_poster(video_uri: str, log: logging.Logger | Any) -> dict[str, str]:
    """Write the poster next to the video; ``{"poster_uri": ...}``, or ``{}`` (never an error: a
    missing poster only costs the gallery its picture). Same folder, same name, ``.jpg``."""
    target = ObjectStoragePath(video_uri).with_suffix(".jpg")
    try:
        with ObjectStoragePath(video_uri).open("rb") as source:
            jpeg = frame_jpeg(source, at_seconds=POSTER_AT_SECONDS, width=POSTER_WIDTH)
        write_bytes_atomically(jpeg, target)
    except ImportError:
        log.info("No poster frame: PyAV is not installed (pip install 'airflow-provider-gptproto[ui]')")
        return {}
    except (GPTProtoStitchError, OSError) as exc:
        log.warning("No poster frame for %s: %s", video_uri, exc)
        return {}
    log.info("Poster frame of %s saved to %s (%d bytes)", video_uri, target, len(jpeg))
    return {POSTER_KEY: str(target)}
