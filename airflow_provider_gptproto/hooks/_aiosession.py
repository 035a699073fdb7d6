"""One aiohttp session per event loop, shared by every hook (and so every trigger) in the process:
sockets stay bounded and polls skip handshakes. It carries no credentials (each request sends its
own header), and closes when its last user releases it.

Requests wait for one of the loop's slots (``[gptproto] connections_per_loop``, default
:data:`CONNECTION_LIMIT`) *before* aiohttp builds them. A
request queued inside aiohttp's connector already holds its request object, headers, timers and a
stack of coroutines; when a triggerer's loop stalls (a full garbage collection over Airflow's heap),
thousands of polls come due at once, queue there, outlive two young collections and are promoted
to the oldest generation, which brings the next full collection sooner: at 10,000 waits the loop
spent a third of its time collecting (bench/results.md, benchmark 1's 10,000 row). A poll waiting
for a slot holds one future. The wait is bounded, as aiohttp's own wait for a connection was.
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from types import TracebackType
from typing import NamedTuple

import aiohttp
from airflow.providers.common.compat.sdk import conf

from airflow_provider_gptproto.exceptions import GPTProtoConnectionError, GPTProtoRequestError

# The connector limit bounds concurrent sockets per loop, whatever the number of triggers; the
# default of ``[gptproto] connections_per_loop``.
CONNECTION_LIMIT = 64
KEEPALIVE_SECONDS = 30.0


def connection_limit() -> int:
    """``[gptproto] connections_per_loop``: the sockets (and slots) of one event loop's session.

    :raises GPTProtoRequestError: the option is not a whole number >= 1.
    """
    raw = conf.get("gptproto", "connections_per_loop", fallback="").strip()
    if not raw:
        return CONNECTION_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if limit < 1:
        raise GPTProtoRequestError(
            f"[gptproto] connections_per_loop must be a whole number >= 1, got {raw!r}",
            field="connections_per_loop",
        )
    return limit


class SharedSession(NamedTuple):
    """A loop's session and the slots its requests take first (``async with shared.slot(30):``)."""

    session: aiohttp.ClientSession
    slots: asyncio.Semaphore
    limit: int

    def slot(self, seconds: float) -> Slot:
        """One slot for one request, waited for at most ``seconds``."""
        return Slot(self.slots, seconds, self.limit)


class Slot:
    """Holds one of a loop's slots for the ``async with`` block.

    :raises GPTProtoConnectionError: no slot came free within ``seconds`` (nothing was sent).
    """

    __slots__ = ("_limit", "_seconds", "_slots")

    def __init__(self, slots: asyncio.Semaphore, seconds: float, limit: int) -> None:
        self._slots, self._seconds, self._limit = slots, seconds, limit

    async def __aenter__(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: no waiting, no timer
            return
        try:
            if sys.version_info >= (3, 11):  # a timer; wait_for would wrap each waiting poll in a task
                async with asyncio.timeout(self._seconds):
                    await self._slots.acquire()
            else:  # pragma: no cover - Python 3.10
                await asyncio.wait_for(self._slots.acquire(), self._seconds)
        except asyncio.TimeoutError:
            raise GPTProtoConnectionError(
                f"no free connection within {self._seconds:g} s (all {self._limit} in use)",
                request_sent=False,
            ) from None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._slots.release()


# Weak keys: a loop that ends without releasing its session does not pin it here forever.
_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[SharedSession, int]] = (
    weakref.WeakKeyDictionary()
)


def acquire() -> SharedSession:
    """Return the running loop's shared session and slots, creating them on first use."""
    loop = asyncio.get_running_loop()
    entry = _sessions.get(loop)
    if entry is None or entry[0].session.closed:
        limit = connection_limit()
        connector = aiohttp.TCPConnector(
            limit=limit, keepalive_timeout=KEEPALIVE_SECONDS, enable_cleanup_closed=True
        )
        session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
        entry = (SharedSession(session, asyncio.Semaphore(limit), limit), 0)
    shared, users = entry
    _sessions[loop] = (shared, users + 1)
    return shared


async def release(session: aiohttp.ClientSession) -> None:
    """Drop one use of ``session``; close it when nobody uses it any more."""
    loop = asyncio.get_running_loop()
    entry = _sessions.get(loop)
    if entry is None or entry[0].session is not session:
        if not session.closed:
            await session.close()
        return
    users = entry[1] - 1
    if users > 0:
        _sessions[loop] = (entry[0], users)
        return
    del _sessions[loop]
    await session.close()


def open_sessions() -> int:
    """How many shared sessions are open (for tests and benchmarks)."""
    return sum(1 for shared, _ in _sessions.values() if not shared.session.closed)
