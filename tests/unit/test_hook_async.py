"""GPTProtoHook's async API against ``aioresponses``: one shared session per loop, retries, redaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from airflow_provider_gptproto.exceptions import (
    GPTProtoAuthError,
    GPTProtoConnectionError,
    GPTProtoContentPolicyError,
    GPTProtoNotFoundError,
    GPTProtoRequestError,
    GPTProtoResponseError,
    GPTProtoServerError,
)
from airflow_provider_gptproto.hooks import _aiosession
from airflow_provider_gptproto.hooks._settings import USER_AGENT
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.models import TaskStatus

from .conftest import API_KEY, PUBLIC_ADDRESS, TASKS_URL, LogCapture, conn_json, free_port, set_conn

URL_T1 = f"{TASKS_URL}/t1"


def task_b(task_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"id": task_id, "status": status, **extra}


@pytest.fixture
def async_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record tenacity's async back-off waits instead of sleeping them."""
    recorded: list[float] = []
    original = asyncio.sleep

    async def fake_sleep(delay: float, result: Any = None) -> Any:
        recorded.append(delay)
        return await original(0, result)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    return recorded


@pytest.fixture
def sessions_created(monkeypatch: pytest.MonkeyPatch) -> list[aiohttp.ClientSession]:
    created: list[aiohttp.ClientSession] = []
    original_init = aiohttp.ClientSession.__init__

    def counting_init(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        created.append(self)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", counting_init)
    return created


@pytest.fixture
async def ahook(gptproto_conn: str, async_sleeps: list[float]) -> AsyncIterator[GPTProtoHook]:
    hook = GPTProtoHook(gptproto_conn)
    yield hook
    await hook.aclose()
    assert _aiosession.open_sessions() == 0


def calls(mock: aioresponses, method: str, url: str) -> list[Any]:
    return mock.requests.get((method, URL(url)), [])


# ------------------------------------------------------------------------------- basics


async def test_aget_task_parses_and_sends_exact_headers(ahook: GPTProtoHook, aio: aioresponses) -> None:
    aio.get(URL_T1, payload=task_b("t1", "succeeded", content={"video_url": "https://cdn/v.mp4"}))
    task = await ahook.aget_task("t1")
    assert task.status is TaskStatus.SUCCEEDED
    assert task.video_url == "https://cdn/v.mp4"
    (call,) = calls(aio, "GET", URL_T1)
    assert call.kwargs["headers"] == {
        "Authorization": f"Bearer {API_KEY}",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    timeout = call.kwargs["timeout"]
    assert timeout.total == 60  # default; no extras in the fixture connection
    assert timeout.sock_connect == 10.0


async def test_no_connection_extra_becomes_a_header(
    monkeypatch: pytest.MonkeyPatch, aio: aioresponses
) -> None:
    set_conn(monkeypatch, conn_json(timeout=7, region="eu", **{"X-Custom": "1"}))
    hook = GPTProtoHook()
    aio.get(URL_T1, payload=task_b("t1", "queued"))
    try:
        await hook.aget_task("t1")
    finally:
        await hook.aclose()
    (call,) = calls(aio, "GET", URL_T1)
    assert set(call.kwargs["headers"]) == {"Authorization", "Accept", "User-Agent"}
    assert call.kwargs["timeout"].total == 7.0


async def test_acancel_task_sends_delete(ahook: GPTProtoHook, aio: aioresponses) -> None:
    aio.delete(URL_T1, payload={})
    assert await ahook.acancel_task("t1") is None
    assert len(calls(aio, "DELETE", URL_T1)) == 1


async def test_acancel_task_with_empty_204(ahook: GPTProtoHook, aio: aioresponses) -> None:
    aio.delete(URL_T1, status=204, body="")
    assert await ahook.acancel_task("t1") is None


async def test_async_task_id_is_validated_and_escaped(ahook: GPTProtoHook, aio: aioresponses) -> None:
    with pytest.raises(GPTProtoRequestError):
        await ahook.aget_task("")
    aio.get(f"{TASKS_URL}/a%2Fb", payload=task_b("a/b", "queued"))
    assert (await ahook.aget_task("a/b")).task_id == "a/b"


# ------------------------------------------------------------------------------- shared session


async def test_many_calls_share_one_client_session(
    ahook: GPTProtoHook, aio: aioresponses, sessions_created: list[aiohttp.ClientSession]
) -> None:
    aio.get(URL_T1, payload=task_b("t1", "running"), repeat=True)
    aio.delete(URL_T1, payload={}, repeat=True)
    for _ in range(10):
        await ahook.aget_task("t1")
    await ahook.acancel_task("t1")
    await ahook.acancel_task("t1")
    assert len(sessions_created) == 1
    assert _aiosession.open_sessions() == 1
    session = sessions_created[0]
    await ahook.aclose()
    assert session.closed
    assert _aiosession.open_sessions() == 0
    await ahook.aclose()  # idempotent


async def test_concurrent_calls_share_one_session(
    ahook: GPTProtoHook, aio: aioresponses, sessions_created: list[aiohttp.ClientSession]
) -> None:
    aio.get(URL_T1, payload=task_b("t1", "running"), repeat=True)
    results = await asyncio.gather(*(ahook.aget_task("t1") for _ in range(20)))
    assert {r.status for r in results} == {TaskStatus.RUNNING}
    assert len(sessions_created) == 1


class Gate:
    """Requests that reach ``ClientSession._request`` wait there until :attr:`release` is set;
    :attr:`waiting` counts those waiting for a slot."""

    def __init__(self) -> None:
        self.inside, self.most, self.waiting = 0, 0, 0
        self.release, self.changed = asyncio.Event(), asyncio.Event()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Until ``condition()`` holds after a change of the counts (at most 10 s)."""
        while not condition():
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)


@pytest.fixture
def gate(aio: aioresponses, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    """Two slots per loop (``[gptproto] connections_per_loop``), and a count of the requests aiohttp
    is building or sending.

    Counted inside ``ClientSession._request``, before aiohttp's connector (which aioresponses
    bypasses): only the slots can hold requests back there.
    """
    monkeypatch.setenv("AIRFLOW__GPTPROTO__CONNECTIONS_PER_LOOP", "2")
    gate, answer, take = Gate(), aiohttp.ClientSession._request, _aiosession.Slot.__aenter__

    async def counted_wait(self: _aiosession.Slot) -> None:
        gate.waiting += 1
        gate.changed.set()
        try:
            await take(self)
        finally:
            gate.waiting -= 1
            gate.changed.set()

    monkeypatch.setattr(_aiosession.Slot, "__aenter__", counted_wait)

    async def counted(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> Any:
        gate.inside += 1
        gate.most = max(gate.most, gate.inside)
        gate.changed.set()
        try:
            await gate.release.wait()
            return await answer(self, *args, **kwargs)
        finally:
            gate.inside -= 1
            gate.changed.set()

    # By hand, not monkeypatch: that one may have been set up before aioresponses, and would then
    # put the stand-in back after aioresponses restored the real method.
    aiohttp.ClientSession._request = counted  # type: ignore[method-assign]
    try:
        yield gate
    finally:
        aiohttp.ClientSession._request = answer  # type: ignore[method-assign]


async def test_requests_past_the_connection_limit_wait_for_a_slot_before_aiohttp_builds_them(
    ahook: GPTProtoHook, aio: aioresponses, gate: Gate
) -> None:
    # A poll queued in aiohttp's connector would already hold a built request.
    aio.get(URL_T1, payload=task_b("t1", "running"), repeat=True)
    polls = asyncio.gather(*(ahook.aget_task("t1") for _ in range(6)))
    await gate.wait_until(lambda: gate.inside + gate.waiting == 6)
    assert (gate.inside, gate.waiting) == (2, 4)
    gate.release.set()
    assert [t.status for t in await polls] == [TaskStatus.RUNNING] * 6
    assert gate.most == 2


async def test_a_request_waits_for_a_slot_no_longer_than_it_was_given() -> None:
    # The hook gives each request its timeout (at least 1 s); the rule itself, with a shorter one.
    slots = asyncio.Semaphore(1)
    async with _aiosession.Slot(slots, 1.0, 1):
        with pytest.raises(
            GPTProtoConnectionError, match=r"no free connection within 0.05 s \(all 1 in use"
        ) as caught:
            async with _aiosession.Slot(slots, 0.05, 1):
                pytest.fail("entered a slot that was taken")
    assert caught.value.request_sent is False  # never reached aiohttp: safe to retry anything
    assert not slots.locked()  # the timed-out wait took nothing; the holder gave its slot back


@pytest.mark.parametrize("value", ["0", "-3", "many", "2.5", "\u00b2"])
async def test_a_connection_limit_that_is_not_a_whole_number_above_zero_is_refused_by_name(
    ahook: GPTProtoHook, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AIRFLOW__GPTPROTO__CONNECTIONS_PER_LOOP", value)
    with pytest.raises(
        GPTProtoRequestError, match=r"\[gptproto\] connections_per_loop must be a whole number >= 1"
    ):
        await ahook.aget_task("t1")


def test_the_connection_limit_defaults_to_64_and_reads_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__GPTPROTO__CONNECTIONS_PER_LOOP", raising=False)
    assert _aiosession.connection_limit() == _aiosession.CONNECTION_LIMIT == 64
    monkeypatch.setenv("AIRFLOW__GPTPROTO__CONNECTIONS_PER_LOOP", " 128 ")
    assert _aiosession.connection_limit() == 128


async def test_a_poll_cancelled_while_it_waits_or_sends_gives_its_slot_back(
    ahook: GPTProtoHook, aio: aioresponses, gate: Gate
) -> None:
    aio.get(URL_T1, payload=task_b("t1", "running"), repeat=True)
    sending = [asyncio.ensure_future(ahook.aget_task("t1")) for _ in range(2)]
    await gate.wait_until(lambda: gate.inside == 2)
    waiting = asyncio.ensure_future(ahook.aget_task("t1"))
    await gate.wait_until(lambda: gate.waiting == 1)
    for task in [waiting, sending[0]]:
        task.cancel()
    await asyncio.gather(waiting, sending[0], return_exceptions=True)
    gate.release.set()
    assert (await sending[1]).status is TaskStatus.RUNNING
    # Both slots are free again: two more polls run side by side.
    gate.release.clear()
    again = asyncio.gather(ahook.aget_task("t1"), ahook.aget_task("t1"))
    await gate.wait_until(lambda: gate.inside == 2)
    gate.release.set()
    assert len(await again) == 2


async def test_a_video_size_head_takes_a_slot_but_not_while_it_resolves(
    ahook: GPTProtoHook, aio: aioresponses, gate: Gate
) -> None:
    aio.get(URL_T1, payload=task_b("t1", "running"), repeat=True)
    video = "http://cdn.gptproto.test/v.mp4"  # resolves to PUBLIC_ADDRESS; the HEAD goes there
    aio.head(f"http://{PUBLIC_ADDRESS}/v.mp4", headers={"Content-Length": "1234"})
    held = asyncio.gather(ahook.aget_task("t1"), ahook.aget_task("t1"))
    await gate.wait_until(lambda: gate.inside == 2)
    size = asyncio.ensure_future(ahook.avideo_size(video))
    await gate.wait_until(lambda: gate.inside + gate.waiting == 3)  # the HEAD came to the slots
    assert (gate.inside, gate.waiting) == (2, 1) and not size.done()  # and waits for one
    gate.release.set()
    assert len(await held) == 2
    assert await size == 1234


async def test_hooks_on_one_loop_share_the_session_until_the_last_releases(
    gptproto_conn: str, aio: aioresponses, sessions_created: list[aiohttp.ClientSession]
) -> None:
    aio.get(URL_T1, payload=task_b("t1", "queued"), repeat=True)
    first, second = GPTProtoHook(gptproto_conn), GPTProtoHook(gptproto_conn)
    await first.aget_task("t1")
    await second.aget_task("t1")
    assert len(sessions_created) == 1
    await first.aclose()
    assert not sessions_created[0].closed  # still used by the second hook
    assert _aiosession.open_sessions() == 1
    await second.aget_task("t1")
    await second.aclose()
    assert sessions_created[0].closed
    assert _aiosession.open_sessions() == 0


async def test_a_new_session_after_aclose(
    ahook: GPTProtoHook, aio: aioresponses, sessions_created: list[aiohttp.ClientSession]
) -> None:
    aio.get(URL_T1, payload=task_b("t1", "queued"), repeat=True)
    await ahook.aget_task("t1")
    await ahook.aclose()
    await ahook.aget_task("t1")
    assert len(sessions_created) == 2
    assert sessions_created[0].closed
    assert not sessions_created[1].closed


async def test_connection_is_resolved_once(
    ahook: GPTProtoHook, aio: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_gptproto.hooks import _async_connections

    lookups: list[str] = []
    original = _async_connections.get_async_connection

    async def counting(conn_id: str, hook: Any = None) -> Any:
        lookups.append(conn_id)
        return await original(conn_id, hook)

    monkeypatch.setattr(_async_connections, "get_async_connection", counting)
    aio.get(URL_T1, payload=task_b("t1", "queued"), repeat=True)
    for _ in range(3):
        await ahook.aget_task("t1")
    assert lookups == ["gptproto_default"]


# ------------------------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_retried_on_5xx(
    ahook: GPTProtoHook, aio: aioresponses, async_sleeps: list[float], status: int
) -> None:
    aio.get(URL_T1, status=status, body="<html>down</html>")
    aio.get(URL_T1, status=status, payload={"error": {"message": "busy"}})
    aio.get(URL_T1, payload=task_b("t1", "running"))
    assert (await ahook.aget_task("t1")).status is TaskStatus.RUNNING
    assert len(calls(aio, "GET", URL_T1)) == 3
    assert len(async_sleeps) == 2
    assert all(0 <= s <= 30 for s in async_sleeps)


async def test_retried_on_429_honouring_retry_after(
    ahook: GPTProtoHook, aio: aioresponses, async_sleeps: list[float]
) -> None:
    aio.get(URL_T1, status=429, headers={"Retry-After": "7"}, payload={"error": {"type": "rate_limit_error"}})
    aio.get(URL_T1, payload=task_b("t1", "running"))
    await ahook.aget_task("t1")
    assert async_sleeps == [7.0]


@pytest.mark.parametrize(
    "exc",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.ClientPayloadError("truncated"),
        asyncio.TimeoutError(),
    ],
    ids=["disconnected", "reset", "payload", "timeout"],
)
async def test_retried_on_connection_errors(ahook: GPTProtoHook, aio: aioresponses, exc: Exception) -> None:
    aio.get(URL_T1, exception=exc)
    aio.get(URL_T1, payload=task_b("t1", "running"))
    assert (await ahook.aget_task("t1")).status is TaskStatus.RUNNING


async def test_retried_on_malformed_json(ahook: GPTProtoHook, aio: aioresponses) -> None:
    aio.get(URL_T1, body='{"id": "t1", ')
    aio.get(URL_T1, payload=task_b("t1", "running"))
    assert (await ahook.aget_task("t1")).status is TaskStatus.RUNNING


async def test_delete_retried_on_503(ahook: GPTProtoHook, aio: aioresponses) -> None:
    aio.delete(URL_T1, status=503)
    aio.delete(URL_T1, payload={})
    await ahook.acancel_task("t1")
    assert len(calls(aio, "DELETE", URL_T1)) == 2


async def test_gives_up_after_retry_limit(ahook: GPTProtoHook, aio: aioresponses) -> None:
    aio.get(URL_T1, status=500, payload={"error": {"message": "down"}}, repeat=True)
    with pytest.raises(GPTProtoServerError, match="HTTP 500: down"):
        await ahook.aget_task("t1")
    assert len(calls(aio, "GET", URL_T1)) == 3  # retry_limit=3


@pytest.mark.parametrize(
    ("status", "payload", "exc"),
    [
        (401, {"error": {"message": "Invalid signature", "type": "401"}}, GPTProtoAuthError),
        (404, {"error": {"message": "not found"}}, GPTProtoNotFoundError),
        (503, {"error": {"message": "Content policy violation"}}, GPTProtoContentPolicyError),
    ],
)
async def test_not_retried_on_client_errors(
    ahook: GPTProtoHook, aio: aioresponses, status: int, payload: dict[str, Any], exc: type[Exception]
) -> None:
    aio.get(URL_T1, status=status, payload=payload, repeat=True)
    with pytest.raises(exc):
        await ahook.aget_task("t1")
    assert len(calls(aio, "GET", URL_T1)) == 1


async def test_unknown_status_is_a_response_error(ahook: GPTProtoHook, aio: aioresponses) -> None:
    aio.get(URL_T1, payload=task_b("t1", "meditating"), repeat=True)
    with pytest.raises(GPTProtoResponseError, match="meditating"):
        await ahook.aget_task("t1")


async def test_refused_connection_really_fails_over_the_network(
    monkeypatch: pytest.MonkeyPatch, async_sleeps: list[float]
) -> None:
    set_conn(monkeypatch, f"gptproto://:{API_KEY}@127.0.0.1:{free_port()}/http?retry_limit=2")
    hook = GPTProtoHook()
    try:
        with pytest.raises(GPTProtoConnectionError) as info:
            await hook.aget_task("t1")
    finally:
        await hook.aclose()
    assert info.value.request_sent is False
    assert len(async_sleeps) == 1  # retried once, then gave up
    assert API_KEY not in str(info.value)


# ------------------------------------------------------------------------------- redaction


async def test_key_echoed_by_server_is_redacted(
    ahook: GPTProtoHook, aio: aioresponses, logs: LogCapture
) -> None:
    echo = {"error": {"message": f"key {API_KEY} is invalid", "code": API_KEY}}
    aio.get(URL_T1, status=500, payload=echo, repeat=True)
    with pytest.raises(GPTProtoServerError) as info:
        await ahook.aget_task("t1")
    assert API_KEY not in str(info.value)
    assert "key *** is invalid" in str(info.value)
    text = logs.text()
    assert "retrying" in text  # the retry warnings were captured ...
    assert API_KEY not in text  # ... and carry no key
