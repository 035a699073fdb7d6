"""Download safety: only http(s), redirects checked hop by hop, size capped, the API key never sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_gptproto.exceptions import GPTProtoVideoDownloadError
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from tests.integration.dagrun import run_dag


class _Handler(BaseHTTPRequestHandler):
    """/redirect?to=<url> answers 302 to that URL; /endless streams MP4-typed bytes with no length."""

    def do_GET(self) -> None:
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("=", 1)[1])
            self.end_headers()
        elif self.path == "/endless":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()
            self.wfile.write(b"\x00\x00\x00\x18ftypmp42")  # a video's start: only the size can stop it
            for _ in range(64):  # 4 MiB, no Content-Length: only the running count can stop it
                self.wfile.write(b"\0" * 65536)
        else:
            self.send_error(404)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def redirector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/video.mp4", "data:video/mp4;base64,AAAA"]
)
def test_non_http_urls_are_refused_before_any_io(url: str, tmp_path: Path) -> None:
    dest = ObjectStoragePath(f"file://{tmp_path}/out.mp4")
    with pytest.raises(GPTProtoVideoDownloadError, match="only http"):
        GPTProtoHook().download_video(url, dest)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "ftp://127.0.0.1/v.mp4", "data:video/mp4;base64,AAAA"]
)
def test_redirects_to_other_schemes_are_refused(
    redirector: str, emulator: Any, target: str, tmp_path: Path
) -> None:
    dest = ObjectStoragePath(f"file://{tmp_path}/out.mp4")
    with pytest.raises(GPTProtoVideoDownloadError, match="only http"):
        GPTProtoHook().download_video(f"{redirector}/redirect?to={target}", dest)
    assert list(tmp_path.iterdir()) == []


def test_http_redirects_are_followed(redirector: str, emulator: Any, tmp_path: Path) -> None:
    hook = GPTProtoHook()
    task = hook.wait_for_task(
        hook.create_task({"prompt": "redirected"}).task_id, poll_interval=0.1, timeout=30
    )
    dest = ObjectStoragePath(f"file://{tmp_path}/out.mp4")

    saved = hook.download_video(f"{redirector}/redirect?to={task.video_url}", dest)

    assert saved.bytes == (tmp_path / "out.mp4").stat().st_size > 0


def test_size_cap_stops_a_stream_without_content_length(
    redirector: str, emulator: Any, tmp_path: Path
) -> None:
    dest = ObjectStoragePath(f"file://{tmp_path}/out.mp4")
    with pytest.raises(GPTProtoVideoDownloadError, match="max_bytes=1000000"):
        GPTProtoHook().download_video(f"{redirector}/endless", dest, max_bytes=1_000_000)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("airflow_db")
def test_the_api_key_is_never_sent_to_the_video_host(emulator: Any, tmp_path: Path) -> None:
    result = run_dag("it_download", prompt="no keys for strangers", dest=f"{tmp_path}/")

    assert result.state == "success"
    log = emulator.requests_log()
    video_requests = [r for r in log if r["endpoint"] == "video"]
    api_requests = [r for r in log if r["endpoint"] in ("create", "get")]
    assert video_requests, "the download never reached the video URL"
    assert all(not r["auth_present"] for r in video_requests)
    assert all(r["auth_scheme"] == "bearer" for r in api_requests)  # positive control: the API got it
