"""The HTTP half of a video download: fetch from the pre-signed URL, check the reply, stream it to storage.

The API key is never sent: video hosts are third parties and pre-signed URLs need no credentials.
Writing the bytes (atomically, hashed, size-checked) is :mod:`airflow_provider_gptproto.storage`'s job.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests
from airflow.providers.common.compat.sdk import AirflowNotFoundException, get_hook_lineage_collector
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH

from airflow_provider_gptproto.exceptions import (
    GPTProtoURLRefusedError,
    GPTProtoVideoDownloadError,
    GPTProtoVideoURLExpiredError,
)
from airflow_provider_gptproto.hooks._settings import DEFAULT_MAX_BYTES
from airflow_provider_gptproto.models.url_policy import UrlPolicy
from airflow_provider_gptproto.storage import READ_BYTES, DownloadedVideo, write_stream_atomically

if TYPE_CHECKING:
    import aiohttp
    from airflow.sdk import ObjectStoragePath
    from urllib3.connectionpool import ConnectionPool

    from airflow_provider_gptproto.hooks._aiosession import SharedSession
    from airflow_provider_gptproto.hooks._settings import ClientSettings

MAX_REDIRECTS = 5
HEAD_TIMEOUT_SECONDS = 10.0  # a size check (HEAD) per hop: it reads headers only
ALLOWED_CONTENT_TYPES = ("video/", "application/octet-stream", "binary/octet-stream")
_PORTS = {"http": 80, "https": 443}
_PIN = "gptproto_pinned_address"  # the checked address, set on a PreparedRequest for PinnedAdapter


@dataclass(frozen=True)
class Hop:
    """A URL the policy allowed, its host name and the checked address to connect to."""

    url: str
    host: str
    address: str


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, looked up once (an IP literal comes back as it is)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise GPTProtoVideoDownloadError(f"Cannot resolve the host {host}: {type(exc).__name__}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@lru_cache(maxsize=32)
def connection_policy(base_url: str, allow_private_urls: bool) -> UrlPolicy:
    """The URL policy of a connection: its API host resolved once per process."""
    host = urlsplit(base_url).hostname or ""
    try:
        addresses = resolve(host, 443)
    except GPTProtoVideoDownloadError:
        addresses = []  # unknown: treated as a public host
    return UrlPolicy.for_connection(addresses, allow_private_urls)


def policy_of(settings: ClientSettings) -> UrlPolicy:
    return connection_policy(settings.base_url, settings.allow_private_urls)


def download_rules(read_settings: Callable[[], ClientSettings]) -> tuple[UrlPolicy, int]:
    """The connection's URL policy and ``max_bytes``; without a connection, the strict defaults.

    A download sends no key, so a hook whose connection does not exist may still download.
    """
    try:
        settings = read_settings()
    except AirflowNotFoundException:
        return UrlPolicy(), DEFAULT_MAX_BYTES
    return policy_of(settings), settings.max_bytes


def check_video_url(url: str, policy: UrlPolicy | None = None) -> Hop:
    """Refuse ``url`` by scheme and host name, resolve it once, refuse it by address: before connecting.

    :raises GPTProtoURLRefusedError: a rule refuses it (the message names the host, never the query).
    """
    parts, policy = urlsplit(url), policy or UrlPolicy()
    host = parts.hostname or ""
    rule = policy.refusal(parts.scheme, host)
    if rule:
        raise GPTProtoURLRefusedError(host, rule)
    try:
        port = parts.port or _PORTS[parts.scheme.lower()]
    except ValueError:
        raise GPTProtoURLRefusedError(host, "its port is not a number") from None
    addresses = resolve(host, port)
    rule = policy.refusal(parts.scheme, host, addresses)
    if rule:
        raise GPTProtoURLRefusedError(host, rule)
    return Hop(url, host, addresses[0])


class PinnedAdapter(HTTPAdapter):
    """Sends a request that carries a checked address to that address, so DNS is asked only once.

    The pool is keyed by the address; TLS still sends SNI for, and verifies the certificate against,
    the URL's host name (urllib3's ``server_hostname``/``assert_hostname``), and the Host header names
    it. Such a request connects directly (no environment proxy: that would resolve the name again).
    A request without an address (every API call) is sent as usual.
    """

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Any = None,
        cert: Any = None,
    ) -> ConnectionPool:
        address = getattr(request, _PIN, None)
        if address is None:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        parts = urlsplit(str(request.url))
        scheme = parts.scheme.lower()
        pool_kwargs: dict[str, Any] = {}
        if scheme == "https":
            bundle = verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH
            pool_kwargs = {
                "server_hostname": parts.hostname,
                "assert_hostname": parts.hostname,
                "cert_reqs": "CERT_REQUIRED" if verify else "CERT_NONE",
                "ca_cert_dir" if os.path.isdir(bundle) else "ca_certs": bundle,
            }
        port = parts.port or _PORTS[scheme]
        return self.poolmanager.connection_from_host(address, port, scheme, pool_kwargs=pool_kwargs)

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        if getattr(request, _PIN, None) is not None:
            request.headers["Host"] = urlsplit(str(request.url)).netloc.rpartition("@")[2]


def open_stream(
    session: requests.Session,
    url: str,
    timeout: tuple[float, float],
    user_agent: str,
    policy: UrlPolicy | None = None,
    method: str = "GET",
) -> requests.Response:
    """GET with redirects followed by hand: each hop is checked, then fetched from its checked address."""
    for _ in range(MAX_REDIRECTS + 1):
        hop = check_video_url(url, policy)
        try:
            request = requests.Request(method, url, headers={"User-Agent": user_agent})
            prepared = session.prepare_request(request)
            setattr(prepared, _PIN, hop.address)
            verify = session.merge_environment_settings(url, {}, True, None, None)["verify"]
            resp = session.send(prepared, stream=True, allow_redirects=False, timeout=timeout, verify=verify)
        except requests.RequestException as exc:
            raise GPTProtoVideoDownloadError(f"Video download failed: {type(exc).__name__}") from exc
        if resp.is_redirect:
            location = resp.headers.get("Location", "")
            resp.close()
            url = urljoin(url, location)
            continue
        if resp.status_code in (403, 404, 410):
            resp.close()
            raise GPTProtoVideoURLExpiredError(
                f"Video URL answered HTTP {resp.status_code} (expired or revoked)"
            )
        if resp.status_code >= 400:
            resp.close()
            raise GPTProtoVideoDownloadError(f"Video URL answered HTTP {resp.status_code}")
        return resp
    raise GPTProtoVideoDownloadError(f"Video URL redirected more than {MAX_REDIRECTS} times")


async def ahead_length(
    shared: SharedSession, url: str, settings: ClientSettings, timeout: aiohttp.ClientTimeout
) -> int | None:
    """Content-Length by HEAD, each hop checked (in a thread: it resolves) and pinned like ``open_stream``.

    Each HEAD takes one of the loop's slots (``hooks/_aiosession``); the checks in threads hold none.

    Pinning on aiohttp: the request goes to the checked address itself (an IP literal, which the
    connector does not resolve) with the Host header, and for https ``server_hostname``, naming the host.
    """
    from yarl import URL

    loop = asyncio.get_running_loop()
    policy = await loop.run_in_executor(None, policy_of, settings)
    for _ in range(MAX_REDIRECTS + 1):
        hop = await loop.run_in_executor(None, check_video_url, url, policy)
        parts = urlsplit(url)
        async with (
            shared.slot(timeout.total or HEAD_TIMEOUT_SECONDS),
            shared.session.head(
                URL(url, encoded=True).with_host(hop.address),
                allow_redirects=False,
                timeout=timeout,
                headers={"Host": parts.netloc.rpartition("@")[2]},
                server_hostname=hop.host if parts.scheme.lower() == "https" else None,
            ) as resp,
        ):
            if resp.status in (301, 302, 303, 307, 308):
                url = urljoin(url, resp.headers.get("Location", ""))
                continue
            return content_length(resp.headers.get("Content-Length")) if resp.status < 400 else None
    return None


def write_atomically(
    resp: requests.Response, destination: ObjectStoragePath, max_bytes: int | None, *, sweep: bool = True
) -> DownloadedVideo:
    """Check ``resp``'s headers, stream its body into ``destination`` atomically, close it, record lineage.

    ``sweep=False`` skips looking for a killed download's leftovers of this destination (which
    lists its folder), for a caller that runs ``storage.sweep_stale_parts`` on the whole folder.
    """
    try:
        content_type, expected = _check_headers(resp, max_bytes)
        saved = write_stream_atomically(
            _video_chunks(resp.iter_content(READ_BYTES), content_type),
            destination,
            content_type=content_type,
            expected=expected,
            max_bytes=max_bytes,
            sweep=sweep,
            stream_errors=(requests.RequestException,),
        )
    finally:
        resp.close()
    # Once, for the destination: the temporary file is written without the lineage-recording wrapper.
    get_hook_lineage_collector().add_output_asset(context=destination, uri=str(destination))
    return saved


def content_length(value: str | None) -> int | None:
    """A Content-Length header as a byte count; None when absent or not a plain number."""
    return int(value) if value and value.isdigit() else None


def looks_like_video(head: bytes) -> bool:
    """An MP4/MOV ``ftyp`` box at offset 4, or the EBML magic of WebM/Matroska."""
    return head[4:8] == b"ftyp" or head.startswith(b"\x1a\x45\xdf\xa3")


def _video_chunks(chunks: Iterable[bytes], content_type: str) -> Iterator[bytes]:
    """``chunks``, once their first bytes proved to be a video container (an error page is not)."""
    iterator, head = iter(chunks), b""
    for chunk in iterator:
        head += chunk
        if len(head) >= 8:
            break
    if not looks_like_video(head):
        seen = "an empty body" if not head else "HTML" if head.lstrip()[:1] == b"<" else "no video container"
        raise GPTProtoVideoDownloadError(
            f"Video URL served Content-Type {content_type!r} but {seen}: the first bytes are not an "
            "MP4/MOV (ftyp) or WebM/Matroska (EBML) header"
        )
    yield head
    yield from iterator


def _check_headers(resp: requests.Response, max_bytes: int | None) -> tuple[str, int | None]:
    content_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not content_type.startswith(ALLOWED_CONTENT_TYPES):
        raise GPTProtoVideoDownloadError(
            f"Video URL served Content-Type {content_type or 'none'!r}, expected video/*"
        )
    expected = content_length(resp.headers.get("Content-Length"))
    if max_bytes is not None and expected is not None and expected > max_bytes:
        raise GPTProtoVideoDownloadError(f"Video is {expected} bytes, over max_bytes={max_bytes}")
    return content_type, expected
