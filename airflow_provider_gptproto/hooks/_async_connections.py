"""One connection look-up per connection id and event loop per minute, shared by the loop's hooks.

In a triggerer every look-up is a round trip to its supervisor (Airflow registers the password with
the supervisor's secrets masker), which answers between passes over the trigger table that take
seconds at 10,000 triggers: 10,000 waits of one connection starting together queued for many
minutes before their first poll (bench/README.md, benchmark 1). Hooks of one loop that start
within :data:`CACHE_SECONDS` of each other share one look-up; a later hook looks up again, so an
edited connection reaches the waits that start after it within a minute.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseHook
    from airflow.sdk import Connection

CACHE_SECONDS = 60.0
Lookup = tuple["Connection", dict[str, Any]]
_lookups: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, tuple[float, asyncio.Task[Lookup]]]
] = weakref.WeakKeyDictionary()


async def _fetch(conn_id: str, hook: BaseHook) -> Lookup:
    # common-compat picks what this Airflow offers: aget_connection (3.1+), else a thread.
    conn = await get_async_connection(conn_id, hook)
    return conn, await get_async_extra_dejson(conn)


def _failed(task: asyncio.Task[Lookup]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


async def lookup(conn_id: str, hook: BaseHook) -> Lookup:
    """The connection ``conn_id`` and its extra as a dict; a failed look-up is not kept.

    :param hook: the hook asking (common-compat's look-up takes it).
    """
    loop = asyncio.get_running_loop()
    cache = _lookups.setdefault(loop, {})
    entry = cache.get(conn_id)
    if entry is None or entry[0] <= loop.time() or _failed(entry[1]):
        entry = cache[conn_id] = (loop.time() + CACHE_SECONDS, loop.create_task(_fetch(conn_id, hook)))
    # shield: one waiter cancelled (its trigger stopped) must not cancel the others' look-up.
    return await asyncio.shield(entry[1])
