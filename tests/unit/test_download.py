"""write_atomically: the digest thread, and what a failure leaves behind (no file, no thread).

No server: a stand-in response hands out chunks (or raises mid-stream) the way ``iter_content`` does.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import HookLineageCollector
from airflow.sdk import ObjectStoragePath
from fsspec.implementations.local import LocalFileSystem

from airflow_provider_gptproto import storage
from airflow_provider_gptproto.exceptions import GPTProtoVideoDownloadError
from airflow_provider_gptproto.hooks import _video_http
from airflow_provider_gptproto.hooks._video_http import write_atomically
from airflow_provider_gptproto.storage import READ_BYTES, WRITE_BYTES
from airflow_provider_gptproto.storage import digest as _digest
from airflow_provider_gptproto.storage.digest import HASH_QUEUE_CHUNKS

THREAD_NAME = "gptproto-video-sha256"
REAL_SHA256 = hashlib.sha256  # patch_digest replaces hashlib.sha256 itself


class FakeResponse:
    """Just what write_atomically uses of a streamed ``requests.Response``."""

    def __init__(self, chunks: Iterator[bytes], length: int | None, content_type: str = "video/mp4"):
        self.headers = {"Content-Type": content_type}
        if length is not None:
            self.headers["Content-Length"] = str(length)
        self._chunks = chunks
        self.closed = False
        self.chunk_sizes: list[int] = []

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        self.chunk_sizes.append(chunk_size)
        return self._chunks

    def close(self) -> None:
        self.closed = True


MP4_HEAD = b"\x00\x00\x00\x18ftypmp42"  # what every MP4 starts with: the ftyp box


def video_bytes(size: int) -> bytes:
    """``size`` random bytes that start like an MP4, so the container check lets them through."""
    return (MP4_HEAD + os.urandom(size))[:size]


def pieces(data: bytes, size: int = READ_BYTES, pulled: list[int] | None = None) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        if pulled is not None:
            pulled.append(offset)
        yield data[offset : offset + size]


def broken_after(data: bytes, exc: BaseException, size: int = READ_BYTES) -> Iterator[bytes]:
    yield from pieces(data, size)
    raise exc


def download(resp: FakeResponse, dest: ObjectStoragePath, max_bytes: int | None = None) -> Any:
    return write_atomically(resp, dest, max_bytes)  # type: ignore[arg-type]


def digest_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


@pytest.fixture
def dest(tmp_path: Path) -> ObjectStoragePath:
    return ObjectStoragePath(f"file://{tmp_path}/video.mp4")


@pytest.fixture(autouse=True)
def _no_thread_left_behind() -> Iterator[None]:
    yield
    assert digest_threads() == [], "the digest thread outlived write_atomically"


@pytest.fixture
def patch_digest(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[bytes], None]], None]:
    """Run ``hook`` on every chunk the digest thread hashes, before hashing it (to stall or fail)."""

    def install(hook: Callable[[bytes], None]) -> None:
        class Spy:
            def __init__(self) -> None:
                self.inner = REAL_SHA256()

            def update(self, chunk: bytes) -> None:
                hook(chunk)
                self.inner.update(chunk)

            def hexdigest(self) -> str:
                return self.inner.hexdigest()

        monkeypatch.setattr(_digest.hashlib, "sha256", Spy)

    return install


@pytest.fixture
def patch_writes(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[bytes], None]], None]:
    """Run ``hook`` on every write to the temporary file, before writing it (to record or fail)."""

    def install(hook: Callable[[bytes], None]) -> None:
        real_open = LocalFileSystem.open  # write_atomically opens through the path's file system

        class Spy:
            def __init__(self, handle: Any) -> None:
                self.handle = handle

            def __enter__(self) -> Spy:
                return self

            def __exit__(self, *exc: object) -> None:
                self.handle.close()

            def write(self, data: memoryview) -> int:
                hook(bytes(data))
                return int(self.handle.write(data))

        monkeypatch.setattr(LocalFileSystem, "open", lambda self, *a, **k: Spy(real_open(self, *a, **k)))

    return install


def test_writes_the_whole_video_with_its_sha256(
    dest: ObjectStoragePath, tmp_path: Path, patch_writes: Callable[[Callable[[bytes], None]], None]
) -> None:
    writes: list[int] = []
    patch_writes(lambda data: writes.append(len(data)))
    data = video_bytes(3 * READ_BYTES + 12345)  # several chunks and a short last one: order matters
    resp = FakeResponse(pieces(data), len(data))

    video = download(resp, dest)

    assert (tmp_path / "video.mp4").read_bytes() == data
    assert video.bytes == len(data)
    assert video.sha256 == hashlib.sha256(data).hexdigest()
    assert video.content_type == "video/mp4"
    assert video.uri == str(dest)
    assert os.listdir(tmp_path) == ["video.mp4"]  # the temporary sibling was renamed, not copied
    assert resp.closed and resp.chunk_sizes == [READ_BYTES]
    assert max(writes) == WRITE_BYTES and sum(writes) == len(data)  # big reads, bounded writes


def test_a_killed_downloads_leftover_is_swept_and_a_live_one_kept(
    dest: ObjectStoragePath, tmp_path: Path
) -> None:
    stale = tmp_path / ".video.mp4.0123abcd.part"  # what a SIGKILLed download leaves
    live = tmp_path / ".video.mp4.4567cdef.part"  # a concurrent download still writing
    other = tmp_path / ".other.mp4.89abcdef.part"  # another destination's: not ours to judge
    for path in (stale, live, other):
        path.write_bytes(b"partial")
    idle = time.time() - storage.STALE_PART_SECONDS - 5
    os.utime(stale, (idle, idle))
    os.utime(other, (idle, idle))
    data = video_bytes(1000)

    download(FakeResponse(pieces(data), len(data)), dest)

    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name, "video.mp4"])


def test_sweep_false_leaves_the_folder_unlisted(dest: ObjectStoragePath, tmp_path: Path) -> None:
    stale = tmp_path / ".video.mp4.0123abcd.part"
    stale.write_bytes(b"partial")
    idle = time.time() - storage.STALE_PART_SECONDS - 5
    os.utime(stale, (idle, idle))
    data = video_bytes(1000)

    _video_http.write_atomically(FakeResponse(pieces(data), len(data)), dest, None, sweep=False)  # type: ignore[arg-type]

    assert sorted(os.listdir(tmp_path)) == sorted([stale.name, "video.mp4"])


def test_a_folder_sweep_removes_every_killed_downloads_leftover_in_one_listing(tmp_path: Path) -> None:
    idle = time.time() - storage.STALE_PART_SECONDS - 5
    stale = [tmp_path / ".a.mp4.0123abcd.part", tmp_path / f".b.mp4.{'f' * 32}.part"]
    kept = [
        tmp_path / ".c.mp4.4567cdef.part",  # a live download: written to just now
        tmp_path / ".notes.part",  # not a name write_atomically makes
        tmp_path / "a.mp4",
    ]
    for path in (*stale, *kept):
        path.write_bytes(b"x")
    for path in (*stale, kept[1], kept[2]):
        os.utime(path, (idle, idle))

    storage.sweep_stale_parts(ObjectStoragePath(f"file://{tmp_path}"))

    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in kept)


def test_an_empty_body_is_not_a_video_and_leaves_nothing(dest: ObjectStoragePath, tmp_path: Path) -> None:
    with pytest.raises(GPTProtoVideoDownloadError, match="'video/mp4' but an empty body"):
        download(FakeResponse(iter(()), 0), dest)

    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("head", "content_type", "says"),
    [
        (b"<!DOCTYPE html><html><body>Access denied</body></html>", "video/mp4", "'video/mp4' but HTML"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "application/octet-stream", "'application/octet-stream' but no"),
        (b"\x00\x00", "video/mp4", "no video container"),  # shorter than a box header
    ],
)
def test_a_body_that_is_not_a_video_container_fails_naming_its_content_type(
    dest: ObjectStoragePath, tmp_path: Path, head: bytes, content_type: str, says: str
) -> None:
    resp = FakeResponse(pieces(head, 3), len(head), content_type)  # tiny chunks: the head spans several

    with pytest.raises(GPTProtoVideoDownloadError, match=says):
        download(resp, dest)

    assert os.listdir(tmp_path) == [] and resp.closed


@pytest.mark.parametrize(
    "head", [b"\x00\x00\x00\x20ftypisom", b"\x00\x00\x00\x14ftypqt  ", b"\x1a\x45\xdf\xa3\x9f"]
)
def test_mp4_mov_and_webm_heads_pass_even_when_split_across_chunks(
    dest: ObjectStoragePath, head: bytes
) -> None:
    data = head + os.urandom(5000)

    video = download(FakeResponse(pieces(data, 3), len(data)), dest)

    assert video.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "exc", [requests.exceptions.ChunkedEncodingError("reset"), requests.exceptions.ConnectionError("gone")]
)
def test_a_broken_stream_leaves_nothing_and_stops_the_digest_thread(
    dest: ObjectStoragePath, tmp_path: Path, exc: requests.RequestException
) -> None:
    data = video_bytes(3 * READ_BYTES)
    resp = FakeResponse(broken_after(data, exc), 10 * READ_BYTES)

    with pytest.raises(
        GPTProtoVideoDownloadError, match=f"Video truncated: the stream broke after {len(data)}"
    ):
        download(resp, dest)

    assert os.listdir(tmp_path) == []
    assert resp.closed


def test_fewer_bytes_than_content_length_is_truncation(dest: ObjectStoragePath, tmp_path: Path) -> None:
    data = video_bytes(READ_BYTES + 7)

    with pytest.raises(
        GPTProtoVideoDownloadError, match=f"Video truncated: got {len(data)} of {len(data) + 1}"
    ):
        download(FakeResponse(pieces(data), len(data) + 1), dest)

    assert os.listdir(tmp_path) == []


def test_max_bytes_stops_the_stream_mid_way(dest: ObjectStoragePath, tmp_path: Path) -> None:
    pulled = []

    def endless() -> Iterator[bytes]:
        while True:
            pulled.append(READ_BYTES)
            yield video_bytes(READ_BYTES)

    with pytest.raises(GPTProtoVideoDownloadError, match="max_bytes"):
        download(FakeResponse(endless(), None), dest, max_bytes=3 * READ_BYTES)

    assert len(pulled) == 4  # stopped at the first chunk over the cap
    assert os.listdir(tmp_path) == []


def test_other_errors_propagate_unchanged(dest: ObjectStoragePath, tmp_path: Path) -> None:
    class Interrupted(BaseException):
        pass

    with pytest.raises(Interrupted):
        download(FakeResponse(broken_after(video_bytes(READ_BYTES), Interrupted()), None), dest)

    assert os.listdir(tmp_path) == []


def test_a_write_error_propagates_and_stops_the_digest_thread(
    dest: ObjectStoragePath, tmp_path: Path, patch_writes: Callable[[Callable[[bytes], None]], None]
) -> None:
    def full_disk(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    patch_writes(full_disk)
    pulled: list[int] = []

    with pytest.raises(GPTProtoVideoDownloadError, match="No space left") as caught:
        download(FakeResponse(pieces(MP4_HEAD + bytes(100 * READ_BYTES), pulled=pulled), None), dest)

    # The error names the destination the user chose, never the hidden temporary file.
    assert f"Cannot write the video to {dest}: No space left on device" == str(caught.value)
    assert ".part" not in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)
    assert len(pulled) == 1
    assert os.listdir(tmp_path) == []


def test_a_digest_failure_stops_the_download_and_reaches_the_caller(
    dest: ObjectStoragePath, tmp_path: Path, patch_digest: Callable[[Callable[[bytes], None]], None]
) -> None:
    def no_memory(chunk: bytes) -> None:
        raise MemoryError("no room to hash")

    patch_digest(no_memory)
    pulled: list[int] = []

    with pytest.raises(MemoryError, match="no room to hash"):
        download(FakeResponse(pieces(MP4_HEAD + bytes(100 * READ_BYTES), pulled=pulled), None), dest)

    assert len(pulled) <= HASH_QUEUE_CHUNKS + 3  # noticed within a few chunks, not at the end
    assert os.listdir(tmp_path) == []


def test_a_digest_failure_on_the_last_chunk_still_fails_the_download(
    dest: ObjectStoragePath, tmp_path: Path, patch_digest: Callable[[Callable[[bytes], None]], None]
) -> None:
    hashed: list[int] = []

    def fails_late(chunk: bytes) -> None:
        hashed.append(len(chunk))
        if len(hashed) == 3:
            raise MemoryError("no room to hash")

    patch_digest(fails_late)

    with pytest.raises(MemoryError):
        download(FakeResponse(pieces(video_bytes(3 * READ_BYTES)), 3 * READ_BYTES), dest)

    assert os.listdir(tmp_path) == []


def test_a_slow_digest_holds_back_the_stream_so_memory_stays_flat(
    dest: ObjectStoragePath, tmp_path: Path, patch_digest: Callable[[Callable[[bytes], None]], None]
) -> None:
    """While the digest thread is stuck, only a bounded number of chunks may be read ahead."""
    release = threading.Event()

    def stuck_until_released(chunk: bytes) -> None:
        release.wait(30)

    patch_digest(stuck_until_released)
    data = video_bytes(40 * 1024)
    pulled: list[int] = []
    result: list[Any] = []
    worker = threading.Thread(
        target=lambda: result.append(
            download(FakeResponse(pieces(data, 1024, pulled=pulled), len(data)), dest)
        )
    )
    worker.start()
    try:
        seen = -1
        while seen != len(pulled):  # wait until reading has stalled behind the stuck digest
            seen = len(pulled)
            time.sleep(0.2)
        # one chunk being hashed, HASH_QUEUE_CHUNKS queued, one waiting to be queued
        assert len(pulled) <= HASH_QUEUE_CHUNKS + 2
    finally:
        release.set()
        worker.join(30)
    assert result and result[0].sha256 == REAL_SHA256(data).hexdigest()
    assert (tmp_path / "video.mp4").read_bytes() == data


def test_after_a_failure_queued_chunks_are_dropped_not_hashed(
    dest: ObjectStoragePath, tmp_path: Path, patch_digest: Callable[[Callable[[bytes], None]], None]
) -> None:
    release = threading.Event()
    hashed: list[int] = []

    def stuck_until_released(chunk: bytes) -> None:
        hashed.append(len(chunk))
        release.wait(30)

    patch_digest(stuck_until_released)
    chunks = HASH_QUEUE_CHUNKS + 1  # one being hashed, the others queued when the stream breaks
    stream = broken_after(video_bytes(1024 * chunks), requests.ConnectionError(), 1024)
    threading.Timer(0.3, release.set).start()  # the first digest is stuck until the stream has broken

    with pytest.raises(GPTProtoVideoDownloadError, match="truncated"):
        download(FakeResponse(stream, None), dest)

    assert hashed == [1024]  # the chunk in progress finished; the queued ones were dropped
    assert os.listdir(tmp_path) == []


def test_lineage_names_the_destination_once_and_never_the_temporary_file(
    dest: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = HookLineageCollector()  # Airflow's own, as when a lineage reader plugin is installed
    monkeypatch.setattr(_video_http, "get_hook_lineage_collector", lambda: collector)
    data = video_bytes(2 * READ_BYTES)  # 64 writes: one lineage record, not one per write

    download(FakeResponse(pieces(data), len(data)), dest)

    outputs = collector.collected_assets.outputs
    assert [(info.asset.uri, info.count) for info in outputs] == [(str(dest), 1)]
    assert collector.collected_assets.inputs == []


def test_a_failed_download_records_no_lineage(
    dest: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = HookLineageCollector()
    monkeypatch.setattr(_video_http, "get_hook_lineage_collector", lambda: collector)
    data = video_bytes(READ_BYTES)

    with pytest.raises(GPTProtoVideoDownloadError, match="truncated"):
        download(FakeResponse(pieces(data), len(data) + 1), dest)

    assert collector.collected_assets.outputs == []
