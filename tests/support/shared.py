"""Expensive resources (an Airflow stack with finished runs) shared by the tests of several modules.

A session-scoped fixture would keep such a stack alive, and its scheduler busy on two cores, until
the whole session ends. Here a resource is started by its first user, the tests that use it are
run one after another (``group_users``), and it is stopped right after the last of them
(``release_unused``, called between tests from ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

_OPEN: dict[str, tuple[Any, ExitStack]] = {}
# Fixture names of the shared resources, filled by ``shared_fixture``.
SHARED_NAMES: set[str] = set()


def acquire(name: str, factory: Callable[[], AbstractContextManager[T]]) -> T:
    """The running resource ``name``, started with ``factory()`` by its first user."""
    if name not in _OPEN:
        cleanup = ExitStack()
        try:
            value = cleanup.enter_context(factory())
        except BaseException:
            cleanup.close()
            raise
        _OPEN[name] = (value, cleanup)
    return _OPEN[name][0]  # type: ignore[no-any-return]


def release_unused(next_item: pytest.Item | None) -> None:
    """Stop every open resource the next test does not use (all of them at the end)."""
    wanted = set(getattr(next_item, "fixturenames", ())) if next_item is not None else set()
    for name in [name for name in _OPEN if name not in wanted]:
        _OPEN.pop(name)[1].close()


def group_users(items: list[pytest.Item]) -> None:
    """Move each shared resource's users next to its first user (order otherwise kept)."""
    for name in SHARED_NAMES:
        users = [item for item in items if name in getattr(item, "fixturenames", ())]
        if len(users) < 2:
            continue
        first = items.index(users[0])
        moved = {id(item) for item in users}
        rest = [item for item in items if id(item) not in moved]
        at = rest.index(items[first - 1]) + 1 if first > 0 else 0
        items[:] = rest[:at] + users + rest[at:]
