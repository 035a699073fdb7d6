"""The image a create request gives the ``first_frame`` role, as a PNG the renderer starts from.

Only two kinds of image are read: ``data:`` URLs and the emulator's own signed media links (a
finished task's ``last_frame_url``, as a storyboard chains shots). Any other URL is accepted, as
upstream accepts it, but never fetched: an emulator that fetched arbitrary URLs would let a test
reach the network. Such a clip, or one whose image does not decode, renders as if it had no
first frame.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image, UnidentifiedImageError

from .signing import MEDIA_PREFIX, check_signature

if TYPE_CHECKING:
    from .state import EmulatorState


def first_frame_url(body: Mapping[str, Any]) -> str | None:
    """The URL of the content item with the ``first_frame`` role (or the only image, role unset)."""
    content = body.get("content")
    if not isinstance(content, list):
        return None
    images = [item for item in content if isinstance(item, dict) and item.get("type") == "image_url"]
    chosen = [item for item in images if item.get("role") == "first_frame"]
    if not chosen and len(images) == 1 and not images[0].get("role"):
        chosen = images
    if not chosen:
        return None
    raw = chosen[0].get("image_url")
    url = raw.get("url") if isinstance(raw, dict) else raw
    return url if isinstance(url, str) else None


async def stored_first_frame(state: EmulatorState, body: Mapping[str, Any]) -> str | None:
    """Read the request's first-frame image, if it is one the emulator reads; store it as a PNG.

    Returns the PNG's path (named by its content, so equal images share a file), or None.
    """
    url = first_frame_url(body)
    if url is None:
        return None
    source: bytes | Path | None = _data_url_bytes(url) if url.startswith("data:") else None
    if not url.startswith("data:"):
        source = await _own_last_frame(state, url)
    if source is None:
        return None
    # Decoding and writing an image is blocking work: off the event loop.
    return await asyncio.to_thread(_store_png, source, state.videos.directory / "first-frames")


def _store_png(source: bytes | Path, folder: Path) -> str | None:
    """The image as a PNG file in ``folder``; None when it does not decode (the create is accepted
    either way, as it always was: only the URL's form is validated)."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            png = io.BytesIO()
            image.convert("RGB").save(png, format="PNG")
    except (UnidentifiedImageError, OSError):
        return None
    folder.mkdir(exist_ok=True)
    path = folder / f"{hashlib.sha256(png.getvalue()).hexdigest()[:40]}.png"
    if not path.exists():
        path.write_bytes(png.getvalue())
    return str(path)


def _data_url_bytes(url: str) -> bytes | None:
    try:
        return base64.b64decode(url.partition(",")[2], validate=False)
    except (binascii.Error, ValueError):
        return None


async def _own_last_frame(state: EmulatorState, url: str) -> Path | None:
    """A finished task's last frame, when ``url`` is one of this emulator's valid PNG links."""
    parts = urlsplit(url)
    name = parts.path.removeprefix(MEDIA_PREFIX + "/")
    task_id, _, kind = name.rpartition(".")
    if not parts.path.startswith(MEDIA_PREFIX + "/") or kind != "png":
        return None
    query = parse_qs(parts.query)
    expires, sig = (query.get(key, [None])[0] for key in ("expires", "sig"))
    if check_signature(state.store.signing_secret, task_id, kind, expires, sig) is not None:
        return None
    task = state.store.tasks.get(task_id)
    if task is None or task.status() != "succeeded":
        return None
    return (await state.videos.get(state.render_job(task))).png
