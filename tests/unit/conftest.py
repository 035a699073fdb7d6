"""Fixtures for the unit suite: a gptproto connection from the environment, a hook, and leak checks.

Nothing here starts a server: HTTP is stubbed with ``responses`` (sync) and ``aioresponses`` (async).
"""

from __future__ import annotations

import inspect
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import requests
import structlog
from aioresponses import aioresponses
from urllib3.exceptions import NewConnectionError

# Imported at collection time on purpose: Airflow configures logging on first import, which would
# otherwise replace the handler pytest's caplog installs for the test that happens to import it.
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook

API_KEY = "sk-unit-test-2f9c1e7a4b"
BASE_URL = "https://api.gptproto.test"
TASKS_URL = f"{BASE_URL}/api/v3/contents/generations/tasks"
CONN_ID = "gptproto_default"


# What every host name resolves to in unit tests: a public address nothing connects to (HTTP is
# stubbed, and the session's socket guard would stop a real connection), so no DNS query leaves.
PUBLIC_ADDRESS = "93.184.215.14"
_real_getaddrinfo = socket.getaddrinfo


def fake_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    """IP literals and localhost as the system answers them; any other name: PUBLIC_ADDRESS."""
    name = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        if name != "localhost":
            host = PUBLIC_ADDRESS
    return _real_getaddrinfo(host, port, *args, **kwargs)


@pytest.fixture(autouse=True)
def _no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)


def conn_json(host: str = BASE_URL, password: str | None = API_KEY, **extra: object) -> str:
    """A connection in the JSON form of ``AIRFLOW_CONN_<ID>``."""
    conn: dict[str, object] = {"conn_type": "gptproto", "host": host}
    if password is not None:
        conn["password"] = password
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


def set_conn(monkeypatch: pytest.MonkeyPatch, value: str, conn_id: str = CONN_ID) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)


@pytest.fixture
def gptproto_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """The default connection: BASE_URL, API_KEY, retry_limit 3 so retry tests stay short."""
    set_conn(monkeypatch, conn_json(retry_limit=3))
    return CONN_ID


@pytest.fixture
def hook(gptproto_conn: str) -> Iterator[GPTProtoHook]:
    h = GPTProtoHook(gptproto_conn)
    yield h
    h.close()


@dataclass
class Sleeps:
    """Every ``time.sleep`` call, recorded instead of slept."""

    calls: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    """Patch ``time.sleep`` (tenacity's default sleep and the poll loop both use it)."""
    recorder = Sleeps()
    monkeypatch.setattr(time, "sleep", recorder)
    return recorder


@pytest.fixture
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that would really sleep fails instead; request ``sleeps`` too to allow (and record) it."""

    def refuse(seconds: float) -> None:
        raise AssertionError(f"unexpected time.sleep({seconds})")

    monkeypatch.setattr(time, "sleep", refuse)


@dataclass
class LogCapture:
    """Log output from every route Airflow may send it: structlog events, stdlib records, stdout/err."""

    events: list[dict[str, object]]
    caplog: pytest.LogCaptureFixture
    capfd: pytest.CaptureFixture[str]
    _streams: str = ""

    def text(self) -> str:
        out, err = self.capfd.readouterr()
        self._streams += out + err
        records = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in self.caplog.records)
        events = "\n".join(json.dumps(e, default=str) for e in self.events)
        return "\n".join((events, records, self._streams))


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[LogCapture]:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        yield LogCapture(events, caplog, capfd)


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def refused_error() -> requests.exceptions.ConnectionError:
    """A real 'connection refused' exception from requests, to replay through ``responses``.

    Session-scoped so it is made before any function-scoped ``responses`` mock is active.
    """
    try:
        requests.get(f"http://127.0.0.1:{free_port()}/", timeout=2)
    except requests.exceptions.ConnectionError as exc:
        assert isinstance(exc.args[0].reason, NewConnectionError), exc
        return exc
    raise AssertionError("expected the connection to be refused")  # pragma: no cover


class _CompatResponse(aiohttp.ClientResponse):
    """aiohttp 3.14 made ``stream_writer`` a required argument; aioresponses 0.7.9 does not pass it."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class CompatAioresponses(aioresponses):
    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _CompatResponse)
        super().add(*args, **kwargs)


@pytest.fixture
def aio() -> Iterator[aioresponses]:
    """``aioresponses`` that works on every aiohttp version we install."""
    with CompatAioresponses() as mock:
        yield mock
