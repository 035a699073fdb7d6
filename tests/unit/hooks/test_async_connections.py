"""hooks/_async_connections: the hooks of one event loop share a connection look-up for a minute."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_gptproto.exceptions import GPTProtoAuthError
from airflow_provider_gptproto.hooks import _async_connections
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from tests.unit.conftest import API_KEY, conn_json, set_conn


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every look-up that reaches Airflow (hooks share one because its entry exists before it runs)."""
    seen: list[str] = []
    original = _async_connections.get_async_connection

    async def counting(conn_id: str, hook: Any = None) -> Any:
        seen.append(conn_id)
        return await original(conn_id, hook)

    monkeypatch.setattr(_async_connections, "get_async_connection", counting)
    set_conn(monkeypatch, conn_json(), "gptproto_shared")
    return seen


async def test_hooks_starting_together_share_one_lookup(lookups: list[str]) -> None:
    hooks = [GPTProtoHook("gptproto_shared") for _ in range(50)]
    settings = await asyncio.gather(*(hook.aget_settings() for hook in hooks))
    assert lookups == ["gptproto_shared"]
    assert {s.api_key for s in settings} == {API_KEY}


async def test_a_hook_after_the_minute_looks_up_again(lookups: list[str]) -> None:
    loop = asyncio.get_running_loop()
    await GPTProtoHook("gptproto_shared").aget_settings()
    await GPTProtoHook("gptproto_shared").aget_settings()  # within the minute: shared
    cache = _async_connections._lookups[loop]
    expires, task = cache["gptproto_shared"]
    assert expires - loop.time() == pytest.approx(_async_connections.CACHE_SECONDS, abs=1.0)
    cache["gptproto_shared"] = (loop.time() - 0.001, task)  # the minute has passed
    await GPTProtoHook("gptproto_shared").aget_settings()
    assert lookups == ["gptproto_shared"] * 2


async def test_an_edited_connection_reaches_hooks_that_start_after_the_minute(
    lookups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_async_connections, "CACHE_SECONDS", 0.0)
    assert (await GPTProtoHook("gptproto_shared").aget_settings()).api_key == API_KEY
    set_conn(monkeypatch, conn_json(password="sk-rotated-0000000000000000"), "gptproto_shared")
    assert (await GPTProtoHook("gptproto_shared").aget_settings()).api_key == "sk-rotated-0000000000000000"


async def test_a_failed_lookup_is_not_kept(lookups: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, conn_json(password=None), "gptproto_shared")
    with pytest.raises(GPTProtoAuthError):  # no key: settings refuse it; the look-up itself worked
        await GPTProtoHook("gptproto_shared").aget_settings()
    original = _async_connections.get_async_connection

    async def broken(conn_id: str, hook: Any = None) -> Any:
        raise RuntimeError("secrets backend down")

    monkeypatch.setattr(_async_connections, "get_async_connection", broken)
    monkeypatch.setattr(_async_connections, "CACHE_SECONDS", 3600.0)
    with pytest.raises(RuntimeError, match="backend down"):
        await _async_connections.lookup("gptproto_other", GPTProtoHook("gptproto_other"))
    monkeypatch.setattr(_async_connections, "get_async_connection", original)
    set_conn(monkeypatch, conn_json(), "gptproto_other")
    conn, _ = await _async_connections.lookup("gptproto_other", GPTProtoHook("gptproto_other"))
    assert conn.password == API_KEY


async def test_a_cancelled_waiter_leaves_the_others_their_lookup(
    lookups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    counting = _async_connections.get_async_connection

    async def held(conn_id: str, hook: Any = None) -> Any:
        started.set()
        await release.wait()  # in flight until both waiters wait on it
        return await counting(conn_id, hook)

    monkeypatch.setattr(_async_connections, "get_async_connection", held)
    first = asyncio.ensure_future(GPTProtoHook("gptproto_shared").aget_settings())
    second = asyncio.ensure_future(GPTProtoHook("gptproto_shared").aget_settings())
    # The look-up task runs after both waiters, which were scheduled first, reached it.
    await asyncio.wait_for(started.wait(), 10)
    first.cancel()
    release.set()
    assert (await second).api_key == API_KEY
    assert first.cancelled()
    assert lookups == ["gptproto_shared"]


async def test_each_event_loop_looks_up_on_its_own(lookups: list[str]) -> None:
    await GPTProtoHook("gptproto_shared").aget_settings()

    def other_loop() -> None:
        asyncio.run(GPTProtoHook("gptproto_shared").aget_settings())

    await asyncio.to_thread(other_loop)
    assert lookups == ["gptproto_shared"] * 2
