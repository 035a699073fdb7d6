"""One aiohttp session per event loop, shared by every hook (and so every trigger) in the process:
sockets stay bounded and polls skip handshakes. It carries no credentials (each request sends its
own header), and closes when its last user releases it.
"""

from __future__ import annotations

import asyncio
import weakref

import aiohttp

# The connector limit bounds concurrent sockets per loop, whatever the number of triggers.
CONNECTION_LIMIT = 64
KEEPALIVE_SECONDS = 30.0

# Weak keys: a loop that ends without releasing its session does not pin it here forever.
_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, int]] = (
    weakref.WeakKeyDictionary()
)


def acquire() -> aiohttp.ClientSession:
    """Return the running loop's shared session, creating it on first use."""
    loop = asyncio.get_running_loop()
    entry = _sessions.get(loop)
    if entry is None or entry[0].closed:
        connector = aiohttp.TCPConnector(
            limit=CONNECTION_LIMIT, keepalive_timeout=KEEPALIVE_SECONDS, enable_cleanup_closed=True
        )
        entry = (aiohttp.ClientSession(connector=connector, raise_for_status=False), 0)
    session, users = entry
    _sessions[loop] = (session, users + 1)
    return session


async def release(session: aiohttp.ClientSession) -> None:
    """Drop one use of ``session``; close it when nobody uses it any more."""
    loop = asyncio.get_running_loop()
    entry = _sessions.get(loop)
    if entry is None or entry[0] is not session:
        if not session.closed:
            await session.close()
        return
    users = entry[1] - 1
    if users > 0:
        _sessions[loop] = (session, users)
        return
    del _sessions[loop]
    await session.close()


def open_sessions() -> int:
    """How many shared sessions are open (for tests and benchmarks)."""
    return sum(1 for session, _ in _sessions.values() if not session.closed)
