"""Register API keys with Airflow's secrets masker once per process, from sync and async code.

In a task or triggerer process, registering a key also tells the supervisor, over a round trip: a
triggerer starting 10,000 waits of one connection made 10,000 of them, each queued behind the
supervisor's database work (bench/README.md, benchmark 1). A key is marked before it is sent, so
hooks starting together send it once (the others go on meanwhile: Airflow has already masked the
password it read, in this process), and unmarked again if sending raised, so the next hook retries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from airflow.providers.common.compat.sdk import mask_secret
from asgiref.sync import sync_to_async

MASKED_KEYS: set[str] = set()


def mask_key(key: str) -> None:
    """Register ``key`` with the masker (blocking: a worker's task, the hook's sync methods)."""
    with _claim(key) as first:
        if first:
            mask_secret(key)


async def amask_key(key: str) -> None:
    """Register ``key`` with the masker from async code (the triggers), never blocking the loop."""
    with _claim(key) as first:
        if first:
            await _async_masker()(key)


@contextmanager
def _claim(key: str) -> Iterator[bool]:
    """Whether this caller sends ``key`` (no one has yet); marked now, unmarked if sending raised."""
    if key in MASKED_KEYS:
        yield False
        return
    MASKED_KEYS.add(key)
    try:
        yield True
    except BaseException:
        MASKED_KEYS.discard(key)
        raise


def _async_masker() -> Callable[[str], Awaitable[None]]:
    """Airflow's ``amask_secret`` where it has one (3.3). Before, ``mask_secret`` in a thread, as
    Airflow itself reads connections there for async code: a triggerer's sync channel to its
    supervisor refuses calls from the event loop's thread (on 3.0.6 ``async_to_sync`` raises there;
    3.3's triggerer allows them only inside a greenback portal, which a wait running in its own task
    does not have, see ``triggers.base.in_own_task``, and 3.3's ``mask_secret`` then silently skips
    the supervisor)."""
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:
        return sync_to_async(mask_secret)
    return amask_secret
