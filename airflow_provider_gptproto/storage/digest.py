"""sha256 of a stream, computed on a helper thread while the stream is still being written."""

from __future__ import annotations

import hashlib
import queue
import threading
from types import TracebackType

# Chunks waiting for the digest thread: memory stays at a few chunks whatever the file's size.
HASH_QUEUE_CHUNKS = 4


class BackgroundSha256:
    """sha256 of the chunks passed to ``update``, computed in order on a helper thread.

    Inline hashing held a download to ~0.6x ``curl -o``; hashlib releases the GIL, so here it overlaps
    the next chunk's receive and write. Leaving the ``with`` block always joins the thread.
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=HASH_QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._abandoned = False  # the write failed: chunks still queued are dropped, not hashed
        self._thread = threading.Thread(target=self._run, name="gptproto-video-sha256", daemon=True)

    def __enter__(self) -> BackgroundSha256:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._abandoned = exc_type is not None
        self._chunks.put(None)  # never blocks for long: the thread always drains the queue
        self._thread.join()
        if self._error is not None and exc_type is None:
            raise self._error

    def update(self, chunk: bytes) -> None:
        """Queue ``chunk`` for hashing; re-raises an error the thread met on an earlier chunk."""
        if self._error is not None:
            raise self._error
        self._chunks.put(chunk)

    def hexdigest(self) -> str:
        """The digest of every chunk; only once the ``with`` block has ended."""
        if self._thread.is_alive():
            raise RuntimeError("the digest is only known once the with block has ended")
        return self._digest.hexdigest()

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self._error is not None or self._abandoned:
                continue
            try:
                self._digest.update(chunk)
            except BaseException as exc:  # e.g. MemoryError: handed to the writer; the queue still drains
                self._error = exc
