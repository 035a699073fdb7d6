"""URL safety: every rule of the policy, the hook refusing before any connection (and per redirect
hop), the checked address being the one connected to, and the loopback-only socket guard itself.

Name resolution is patched (tests/unit/conftest.py answers a public address for every name; tests
here answer what they need); a real loopback server stands in for the video host where the
connection itself is what is tested.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import responses
from airflow.sdk import ObjectStoragePath

from airflow_provider_gptproto.exceptions import GPTProtoURLRefusedError, GPTProtoVideoDownloadError
from airflow_provider_gptproto.hooks import _video_http
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.models.url_policy import UrlPolicy
from tests.support import socket_guard
from tests.unit.conftest import API_KEY, conn_json, set_conn

MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(1000)
SIGNATURE = "X-Amz-Signature=0123secret"
STRICT, INTERNAL = UrlPolicy(), UrlPolicy(allow_internal=True)


# ------------------------------------------------------------------------------ the pure policy
@pytest.mark.parametrize(
    ("scheme", "host", "addresses", "rule"),
    [
        ("ftp", "cdn.test", ["93.184.215.14"], "scheme 'ftp' is not allowed: only http and https"),
        ("file", "", None, "only http and https"),
        ("https", "", ["93.184.215.14"], "no host"),
        ("http", "metadata.google.internal", None, "cloud metadata name"),
        ("http", "METADATA.", None, "cloud metadata name"),
        ("http", "cdn.test", ["169.254.169.254"], "169.254.169.254 is a cloud metadata address"),
        ("http", "cdn.test", ["fd00:ec2::254"], "cloud metadata address"),
        ("http", "cdn.test", ["100.100.100.200"], "cloud metadata address"),  # Alibaba
        ("http", "cdn.test", ["::ffff:169.254.169.254"], "169.254.169.254 is a cloud metadata address"),
        ("http", "cdn.test", ["169.254.10.1"], "link-local"),
        ("http", "cdn.test", ["fe80::1"], "link-local"),
        ("http", "cdn.test", ["0.0.0.0"], "unspecified"),
        ("http", "cdn.test", ["::"], "unspecified"),
        ("http", "cdn.test", ["224.0.0.1"], "multicast"),
        ("http", "cdn.test", ["ff02::1"], "multicast"),
        ("http", "cdn.test", ["240.0.0.1"], "reserved"),
        ("http", "cdn.test", ["192.0.2.10"], "reserved"),  # documentation range: not global
        ("http", "cdn.test", [], "resolved to no address"),
    ],
)
def test_each_rule_refuses_whatever_the_connection_allows(
    scheme: str, host: str, addresses: list[str] | None, rule: str
) -> None:
    for policy in (STRICT, INTERNAL):
        reason = policy.refusal(scheme, host, addresses)
        assert reason is not None and rule in reason, (policy, reason)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.5.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd12::1"],
)
def test_loopback_and_private_only_when_the_connection_allows_them(address: str) -> None:
    reason = STRICT.refusal("https", "internal.test", [address])
    assert reason is not None and "allow_private_urls" in reason
    assert INTERNAL.refusal("https", "internal.test", [address]) is None


def test_public_addresses_pass_and_one_refused_address_refuses_the_name() -> None:
    assert STRICT.refusal("https", "cdn.test", ["93.184.215.14", "2606:2800:220:1::1"]) is None
    assert "10.0.0.5 is a private" in str(STRICT.refusal("https", "cdn.test", ["93.184.215.14", "10.0.0.5"]))
    assert "metadata" in str(INTERNAL.refusal("https", "cdn.test", ["127.0.0.1", "169.254.169.254"]))


@pytest.mark.parametrize(
    ("api_addresses", "flag", "internal"),
    [
        (["127.0.0.1"], False, True),
        (["10.0.0.8"], False, True),
        (["93.184.215.14"], False, False),
        (["93.184.215.14"], True, True),
        ([], False, False),
    ],
)
def test_the_connections_own_host_or_its_flag_allows_internal_urls(
    api_addresses: list[str], flag: bool, internal: bool
) -> None:
    assert UrlPolicy.for_connection(api_addresses, flag).allow_internal is internal


# ------------------------------------------------------------------------ the hook, per rule
@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Name -> addresses for the patched resolver; names not listed answer a public address."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in table:
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in table[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    _video_http.connection_policy.cache_clear()
    return table


@pytest.fixture
def dest(tmp_path: Path) -> ObjectStoragePath:
    return ObjectStoragePath(f"file://{tmp_path}/v.mp4")


def _refused(hook: GPTProtoHook, url: str, dest: ObjectStoragePath) -> GPTProtoURLRefusedError:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        with pytest.raises(GPTProtoURLRefusedError) as caught:
            hook.download_video(url, dest)
        assert len(rsps.calls) == 0, "a refused URL was requested"
    return caught.value


@pytest.mark.parametrize(
    ("url", "resolves_to", "rule"),
    [
        ("http://169.254.169.254/latest/meta-data/", None, "cloud metadata address"),
        ("http://metadata.google.internal/computeMetadata/v1/", None, "cloud metadata name"),
        ("https://cdn.evil.test/v.mp4", ["169.254.169.254"], "cloud metadata address"),
        ("https://cdn.evil.test/v.mp4", ["fe80::1"], "link-local"),
        ("https://cdn.evil.test/v.mp4", ["0.0.0.0"], "unspecified"),
        ("https://cdn.evil.test/v.mp4", ["239.1.1.1"], "multicast"),
        ("https://cdn.evil.test/v.mp4", ["240.0.0.1"], "reserved"),
        ("https://cdn.evil.test/v.mp4", ["127.0.0.1"], "loopback address"),
        ("https://cdn.evil.test/v.mp4", ["192.168.0.10"], "private address"),
        ("http://[::1]:8080/v.mp4", None, "loopback address"),
        ("ftp://cdn.evil.test/v.mp4", None, "only http and https"),
    ],
)
def test_a_refused_url_is_never_connected_to_and_its_query_never_named(
    hook: GPTProtoHook,
    answers: dict[str, list[str]],
    dest: ObjectStoragePath,
    tmp_path: Path,
    url: str,
    resolves_to: list[str] | None,
    rule: str,
) -> None:
    if resolves_to:
        answers["cdn.evil.test"] = resolves_to

    error = _refused(hook, f"{url}?{SIGNATURE}", dest)

    host = (
        url.split("//")[1].split("/")[0].rsplit(":", 1)[0].strip("[]")
        if "[" in url
        else url.split("//")[1].split("/")[0]
    )
    assert error.host == host and host in str(error)
    assert rule in str(error) and "secret" not in str(error) and "Signature" not in str(error)
    assert isinstance(error, GPTProtoVideoDownloadError)
    assert list(tmp_path.iterdir()) == []


def test_a_private_video_host_is_allowed_by_the_connections_flag(
    monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]], dest: ObjectStoragePath
) -> None:
    answers["videos.corp.test"] = ["10.20.30.40"]
    set_conn(monkeypatch, conn_json(allow_private_urls=True))
    hook = GPTProtoHook()
    with responses.RequestsMock() as rsps:
        rsps.get("https://videos.corp.test/v.mp4", body=MP4, content_type="video/mp4")
        assert hook.download_video("https://videos.corp.test/v.mp4", dest).bytes == len(MP4)


def test_a_private_video_host_is_allowed_when_the_api_host_is_private(
    monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]], dest: ObjectStoragePath
) -> None:
    answers["videos.corp.test"] = ["10.20.30.40"]
    answers["proxy.corp.test"] = ["10.0.0.2"]
    set_conn(monkeypatch, conn_json(host="https://proxy.corp.test"))
    hook = GPTProtoHook()
    with responses.RequestsMock() as rsps:
        rsps.get("https://videos.corp.test/v.mp4", body=MP4, content_type="video/mp4")
        assert hook.download_video("https://videos.corp.test/v.mp4", dest).bytes == len(MP4)


def test_every_redirect_hop_is_checked_before_it_is_requested(
    hook: GPTProtoHook, answers: dict[str, list[str]], dest: ObjectStoragePath, tmp_path: Path
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get("https://cdn.test/a", status=302, headers={"Location": "https://cdn.test/b"})
        rsps.get(
            "https://cdn.test/b", status=302, headers={"Location": f"http://169.254.169.254/x?{SIGNATURE}"}
        )
        with pytest.raises(
            GPTProtoURLRefusedError, match=r"169\.254\.169\.254: 169\.254\.169\.254 is a cloud metadata"
        ):
            hook.download_video("https://cdn.test/a", dest)
        assert [c.request.url for c in rsps.calls] == ["https://cdn.test/a", "https://cdn.test/b"]
    assert list(tmp_path.iterdir()) == []


def test_more_than_five_redirects_fail(hook: GPTProtoHook, dest: ObjectStoragePath) -> None:
    with responses.RequestsMock() as rsps:
        for hop in range(6):
            rsps.get(f"https://cdn.test/{hop}", status=302, headers={"Location": f"/{hop + 1}"})
        with pytest.raises(GPTProtoVideoDownloadError, match="more than 5 times"):
            hook.download_video("https://cdn.test/0", dest)
        assert len(rsps.calls) == 6


def test_video_size_checks_the_url_too(hook: GPTProtoHook, answers: dict[str, list[str]]) -> None:
    answers["cdn.evil.test"] = ["169.254.169.254"]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.head("https://cdn.evil.test/v.mp4", headers={"Content-Length": "5"})
        assert hook.video_size("https://cdn.evil.test/v.mp4") is None
        assert len(rsps.calls) == 0
        rsps.head("https://cdn.test/v.mp4", headers={"Content-Length": "5"})
        assert hook.video_size("https://cdn.test/v.mp4") == 5


def test_max_bytes_comes_from_the_connection_and_the_argument_wins(
    monkeypatch: pytest.MonkeyPatch, dest: ObjectStoragePath, tmp_path: Path
) -> None:
    set_conn(monkeypatch, conn_json(max_bytes=500))
    hook = GPTProtoHook()
    with responses.RequestsMock() as rsps:
        rsps.get("https://cdn.test/v.mp4", body=MP4, content_type="video/mp4")  # 1012 bytes, announced
        with pytest.raises(GPTProtoVideoDownloadError, match="max_bytes=500"):
            hook.download_video("https://cdn.test/v.mp4", dest)
        assert list(tmp_path.iterdir()) == []
        assert hook.download_video("https://cdn.test/v.mp4", dest, max_bytes=2000).bytes == len(MP4)


def test_without_a_connection_a_download_gets_the_strict_defaults(
    answers: dict[str, list[str]], dest: ObjectStoragePath
) -> None:
    answers["videos.corp.test"] = ["10.20.30.40"]
    assert _video_http.download_rules(lambda: GPTProtoHook("no_such_conn").settings) == (
        UrlPolicy(),
        4 * 1024**3,
    )
    _refused(GPTProtoHook("no_such_conn"), "https://videos.corp.test/v.mp4", dest)


# --------------------------------------------------------------- pinning: connect to the checked address
class _VideoHost(BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_HEAD(self) -> None:
        self.hosts.append(self.headers["Host"])
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(MP4)))
        self.end_headers()

    def do_GET(self) -> None:
        self.do_HEAD()
        self.wfile.write(MP4)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def video_host() -> Iterator[int]:
    _VideoHost.hosts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _VideoHost)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@dataclass
class Rebinding:
    checks: list[str] = field(default_factory=list)  # lookups by the check (_video_http.resolve)
    later: list[str] = field(default_factory=list)  # any other lookup of the name (a second answer)


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> Rebinding:
    """The check's lookup answers 127.0.0.1; any other lookup of the name answers 10.9.9.9."""
    seen = Rebinding()
    real_getaddrinfo, real_resolve = socket.getaddrinfo, getattr(_video_http, "resolve", None)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "video.rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        seen.later.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.9.9", port))]

    def resolve(host: str, port: int) -> list[str]:
        if host != "video.rebind.test":
            assert real_resolve is not None
            return real_resolve(host, port)
        seen.checks.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(_video_http, "resolve", resolve, raising=False)
    set_conn(
        monkeypatch, json.dumps({"conn_type": "gptproto", "host": "http://127.0.0.1:9", "password": API_KEY})
    )
    getattr(_video_http, "connection_policy", functools.lru_cache()(lambda: None)).cache_clear()
    return seen


def test_a_second_dns_answer_is_never_used_the_checked_address_is(
    rebinding: Rebinding, video_host: int, dest: ObjectStoragePath, tmp_path: Path
) -> None:
    url = f"http://video.rebind.test:{video_host}/v.mp4?{SIGNATURE}"

    assert GPTProtoHook().download_video(url, dest).bytes == len(MP4)

    assert (tmp_path / "v.mp4").read_bytes() == MP4
    # Checked once, connected to the checked address (10.9.9.9 would trip the socket guard), and the
    # Host header still names the URL's host.
    assert (rebinding.checks, rebinding.later) == (["video.rebind.test"], [])
    assert _VideoHost.hosts == [f"video.rebind.test:{video_host}"]
    assert socket_guard.violations == []


def test_the_async_size_check_is_pinned_too(rebinding: Rebinding, video_host: int) -> None:
    async def size() -> int | None:
        hook = GPTProtoHook()
        try:
            return await hook.avideo_size(f"http://video.rebind.test:{video_host}/v.mp4")
        finally:
            await hook.aclose()

    assert asyncio.run(size()) == len(MP4)
    assert (rebinding.checks, rebinding.later) == (["video.rebind.test"], [])
    assert _VideoHost.hosts == [f"video.rebind.test:{video_host}"]


def test_the_async_size_check_refuses_before_connecting(
    answers: dict[str, list[str]], hook: GPTProtoHook
) -> None:
    answers["cdn.evil.test"] = ["169.254.169.254"]

    async def size() -> int | None:
        try:
            return await hook.avideo_size("http://cdn.evil.test/latest/meta-data/")
        finally:
            await hook.aclose()

    assert asyncio.run(size()) is None
    assert socket_guard.violations == []


# ------------------------------------------------------------------------------ the guard itself
@pytest.mark.parametrize("address", [("192.0.2.1", 9), ("10.9.9.9", 80), ("169.254.169.254", 80)])
def test_the_socket_guard_stops_a_connection_outside_loopback(address: tuple[str, int]) -> None:
    with pytest.raises(socket_guard.NonLoopbackConnectionError, match=f"connect to {address[0]} port"):
        socket.create_connection(address, timeout=1)
    assert len(socket_guard.violations) == 1
    socket_guard.violations.clear()  # tripped on purpose: the teardown check must not fail this test


def test_the_socket_guard_lets_loopback_and_unix_sockets_through(video_host: int, tmp_path: Path) -> None:
    socket.create_connection(("127.0.0.1", video_host), timeout=5).close()
    assert socket_guard.refusal(socket.AF_INET6, ("::1", 80, 0, 0)) is None
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
        server.bind(str(tmp_path / "s"))
        server.listen()
        client.connect(str(tmp_path / "s"))
    assert socket_guard.violations == []
