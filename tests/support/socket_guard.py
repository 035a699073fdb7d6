"""A socket-level guard for the whole test session: connections go to loopback only.

Tests may send traffic only to 127.0.0.0/8 and ::1. ``socket.socket.connect``/``connect_ex`` (which
``socket.create_connection``, urllib3 and asyncio's ``sock_connect`` all end in) refuse any other
address, so a broken URL check fails a test instead of reaching the network. Each refusal is also
recorded: ``tests/conftest.py`` fails the test at teardown even if the code under test swallowed the
error. AF_UNIX sockets are left alone.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
violations: list[str] = []


class NonLoopbackConnectionError(AssertionError):
    """A test tried to connect outside loopback."""


def refusal(family: int, address: Any) -> str | None:
    """Why connecting to ``address`` is not allowed in tests, or None when it is."""
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    host = str(address[0]).split("%", 1)[0]
    if host == "localhost":
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"connect to the name {host!r}: tests may only connect to loopback addresses"
    mapped = getattr(ip, "ipv4_mapped", None) or ip
    if any(mapped in net for net in LOOPBACK):
        return None
    return f"connect to {host} port {address[1]}: tests may only connect to 127.0.0.0/8 and ::1"


def _guarded(real: Callable[..., Any]) -> Callable[..., Any]:
    def connect(sock: socket.socket, address: Any) -> Any:
        reason = refusal(sock.family, address)
        if reason:
            violations.append(reason)
            raise NonLoopbackConnectionError(f"socket guard: {reason}")
        return real(sock, address)

    return connect


def install() -> Callable[[], None]:
    """Patch ``socket.socket``; returns the function that undoes it."""
    originals = {name: getattr(socket.socket, name) for name in ("connect", "connect_ex")}
    for name, real in originals.items():
        setattr(socket.socket, name, _guarded(real))

    def uninstall() -> None:
        for name, real in originals.items():
            setattr(socket.socket, name, real)

    return uninstall
