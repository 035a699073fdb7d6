"""Serving a task's MP4 / last-frame PNG like a pre-signed object-store link.

No auth header, 403 with an XML error once the link has expired or the signature is
wrong, HTTP Range (206 / 416), HEAD, and a body that is always streamed in small chunks.
``--video-bytes N`` grows the MP4 to N bytes by appending a streamed top-level ``free``
box, which MP4 readers skip, so the padded file is still the same playable video.
"""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

CHUNK = 256 * 1024
_ZEROS = bytes(CHUNK)
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True)
class VirtualFile:
    """A file on disk, optionally followed by a ``free`` box padding it to ``size`` bytes."""

    path: Path
    file_size: int
    size: int

    @classmethod
    def padded(cls, path: Path, target: int) -> VirtualFile:
        file_size = path.stat().st_size
        pad = target - file_size
        # A box needs an 8-byte header (16 with a 64-bit size); too little room means no padding.
        if pad < 8 or (pad > 0xFFFFFFFF and pad < 16):
            return cls(path, file_size, file_size)
        return cls(path, file_size, target)

    def box_header(self) -> bytes:
        pad = self.size - self.file_size
        if pad <= 0:
            return b""
        if pad <= 0xFFFFFFFF:
            return struct.pack(">I4s", pad, b"free")
        return struct.pack(">I4sQ", 1, b"free", pad)


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) for a single satisfiable range, "unsatisfiable", or None to send everything.

    Multi-range and malformed headers are ignored, which RFC 9110 allows.
    """
    if not header:
        return None
    match = _RANGE_RE.fullmatch(header.strip())
    if not match or (not match[1] and not match[2]):
        return None
    if not match[1]:
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    first = int(match[1])
    last = int(match[2]) if match[2] else size - 1
    if first >= size or last < first:
        return "unsatisfiable"
    return first, min(last, size - 1)


def _open(path: Path) -> BinaryIO:
    return path.open("rb")


async def iter_bytes(vfile: VirtualFile, first: int, last: int) -> AsyncIterator[bytes]:
    """Yield bytes first..last (inclusive) of the virtual file, CHUNK at a time."""
    position = first
    if position < vfile.file_size:
        handle = _open(vfile.path)
        try:
            handle.seek(position)
            while position <= min(last, vfile.file_size - 1):
                data = handle.read(min(CHUNK, min(last, vfile.file_size - 1) - position + 1))
                if not data:
                    break
                position += len(data)
                yield data
        finally:
            handle.close()
    header = vfile.box_header()
    header_end = vfile.file_size + len(header)
    if position <= last and position < header_end:
        piece = header[position - vfile.file_size : min(last + 1, header_end) - vfile.file_size]
        position += len(piece)
        yield piece
    while position <= last:
        count = min(CHUNK, last - position + 1)
        position += count
        yield _ZEROS[:count]


class MediaResponse(Response):
    """Streams a byte range of a VirtualFile; sends headers only for HEAD."""

    def __init__(
        self,
        vfile: VirtualFile,
        media_type: str,
        range_header: str | None,
        etag: str,
    ) -> None:
        super().__init__(status_code=200, media_type=media_type)
        self.vfile = vfile
        self.first, self.last = 0, vfile.size - 1
        self.raw_headers = [
            (b"accept-ranges", b"bytes"),
            (b"etag", f'"{etag}"'.encode()),
            (b"content-type", media_type.encode()),
        ]
        wanted = parse_range(range_header, vfile.size)
        if wanted == "unsatisfiable":
            self.status_code = 416
            self.first, self.last = 0, -1
            self.raw_headers.append((b"content-range", f"bytes */{vfile.size}".encode()))
        elif isinstance(wanted, tuple):
            self.status_code = 206
            self.first, self.last = wanted
            content_range = f"bytes {self.first}-{self.last}/{vfile.size}"
            self.raw_headers.append((b"content-range", content_range.encode()))
        length = self.last - self.first + 1
        self.raw_headers.append((b"content-length", str(length).encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if scope["method"] == "HEAD" or self.last < self.first:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        async for chunk in iter_bytes(self.vfile, self.first, self.last):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def xml_error(status: int, code: str, message: str, request_id: str) -> Response:
    """An object-store style error, as a client downloading a pre-signed link would see it."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>gptproto-emulator</HostId></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


# Where [[video:redirect-metadata]]'s chain ends: the cloud metadata service (a client must refuse it).
METADATA_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/?X-Amz-Signature=leak"
REDIRECT_HOPS = 2  # loopback hops before the last one
HTML_ERROR_PAGE = b"<!DOCTYPE html>\n<html><head><title>Error</title></head><body>Denied</body></html>\n"
_FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


async def _endless() -> AsyncIterator[bytes]:
    """A video that never ends: an ftyp box (it passes a container check), then zeros forever."""
    yield _FTYP
    while True:
        yield _ZEROS
        await asyncio.sleep(0)  # let the loop serve other requests and notice the client has gone


def hostile_video(request: Request, kind: str) -> Response:
    """What a ``[[video:...]]`` task's video link serves instead of the video.

    ``redirect-metadata``: two loopback redirects, then one to the cloud metadata address;
    ``endless``: 200 ``video/mp4`` with no Content-Length and a body that never ends;
    ``html``: an HTML error page served with 200 and ``video/mp4``.
    """
    if kind == "redirect-metadata":
        hop = int(request.query_params.get("hop", "0") or 0)
        if hop < REDIRECT_HOPS:
            return RedirectResponse(str(request.url.include_query_params(hop=hop + 1)), status_code=302)
        return RedirectResponse(METADATA_URL, status_code=302)
    if kind == "endless":
        if request.method == "HEAD":
            return Response(status_code=200, media_type="video/mp4")
        return StreamingResponse(_endless(), media_type="video/mp4")
    return Response(HTML_ERROR_PAGE, status_code=200, media_type="video/mp4")
