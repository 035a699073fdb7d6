"""Connection (from AIRFLOW_CONN_* in JSON and URI form) -> ClientSettings: URL, key, extras, headers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest

from airflow_provider_gptproto.exceptions import GPTProtoAuthError, GPTProtoRequestError
from airflow_provider_gptproto.get_provider_info import DEFAULT_RETRY_LIMIT, DEFAULT_TIMEOUT_SECONDS
from airflow_provider_gptproto.hooks import _masking
from airflow_provider_gptproto.hooks._settings import DEFAULT_BASE_URL, USER_AGENT, ClientSettings
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook

from .conftest import API_KEY, BASE_URL, conn_json, set_conn


def settings_for(monkeypatch: pytest.MonkeyPatch, value: str, **hook_kwargs: Any) -> ClientSettings:
    set_conn(monkeypatch, value, "gptproto_settings_test")
    return GPTProtoHook("gptproto_settings_test", **hook_kwargs).settings


def test_json_form(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_for(monkeypatch, conn_json())
    assert s.base_url == BASE_URL
    assert s.api_key == API_KEY
    assert s.timeout == DEFAULT_TIMEOUT_SECONDS
    assert s.retry_limit == DEFAULT_RETRY_LIMIT
    assert s.tasks_url == f"{BASE_URL}/api/v3/contents/generations/tasks"


@pytest.mark.parametrize(
    ("uri", "base_url"),
    [
        (f"gptproto://:{API_KEY}@127.0.0.1:8080/http", "http://127.0.0.1:8080"),
        (f"gptproto://:{API_KEY}@localhost:9000/https", "https://localhost:9000"),
        (f"gptproto://:{API_KEY}@api.gptproto.test", "https://api.gptproto.test"),
        (
            f"gptproto://:{API_KEY}@https%3A%2F%2Fproxy.example.com%2Fgptproto%2F",
            "https://proxy.example.com/gptproto",
        ),
        (f"gptproto://:{API_KEY}@http%3A%2F%2F127.0.0.1%3A8080", "http://127.0.0.1:8080"),
        (f"gptproto://:{API_KEY}@", DEFAULT_BASE_URL),
    ],
    ids=["http-port-schema", "https-schema", "bare-host", "encoded-url-with-path", "encoded-url", "no-host"],
)
def test_uri_form(monkeypatch: pytest.MonkeyPatch, uri: str, base_url: str) -> None:
    s = settings_for(monkeypatch, uri)
    assert s.base_url == base_url
    assert s.api_key == API_KEY


def test_uri_form_with_url_encoded_key_and_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_for(
        monkeypatch, "gptproto://:sk%2Fkey%40with%3Achars@127.0.0.1:8080/http?timeout=7&retry_limit=2"
    )
    assert s.api_key == "sk/key@with:chars"
    assert s.timeout == 7.0
    assert s.retry_limit == 2


@pytest.mark.parametrize("host", ["", "   ", None])
def test_empty_host_means_the_public_api(monkeypatch: pytest.MonkeyPatch, host: str | None) -> None:
    value = conn_json(host="") if host is None else conn_json(host=host)
    assert settings_for(monkeypatch, value).base_url == "https://gptproto.com"


@pytest.mark.parametrize(
    ("conn", "base_url"),
    [
        ({"host": "https://api.gptproto.test/"}, "https://api.gptproto.test"),
        ({"host": "api.gptproto.test"}, "https://api.gptproto.test"),
        ({"host": "api.gptproto.test", "port": 8443}, "https://api.gptproto.test:8443"),
        ({"host": "https://api.gptproto.test", "port": 8443}, "https://api.gptproto.test:8443"),
        ({"host": "http://127.0.0.1:8080", "port": 9999}, "http://127.0.0.1:8080"),
        ({"host": "127.0.0.1", "schema": "http", "port": 8080}, "http://127.0.0.1:8080"),
    ],
)
def test_host_forms(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any], base_url: str) -> None:
    import json

    value = json.dumps({"conn_type": "gptproto", "password": API_KEY, **conn})
    assert settings_for(monkeypatch, value).base_url == base_url


@pytest.mark.parametrize("host", ["ftp://files.example.com", "ws://api.example.com"])
def test_non_http_host_is_rejected(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    with pytest.raises(GPTProtoRequestError, match="http") as info:
        settings_for(monkeypatch, conn_json(host=host))
    assert info.value.field == "host"


@pytest.mark.parametrize("password", [None, "", "   "])
def test_missing_key_is_an_auth_error_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, password: str | None
) -> None:
    with pytest.raises(GPTProtoAuthError) as info:
        settings_for(monkeypatch, conn_json(password=password))
    assert "gptproto_settings_test" in str(info.value)
    assert "Password" in str(info.value)


def test_key_is_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_for(monkeypatch, conn_json(password=f"  {API_KEY}\n")).api_key == API_KEY


# ------------------------------------------------------------------------------------ extras


@pytest.mark.parametrize(
    ("extra", "timeout", "retry_limit"),
    [
        ({"timeout": 5, "retry_limit": 2}, 5.0, 2),
        ({"timeout": "12.5", "retry_limit": "4"}, 12.5, 4),
        ({"extra__gptproto__timeout": 9, "extra__gptproto__retry_limit": 7}, 9.0, 7),
        ({"timeout": 5, "extra__gptproto__timeout": 9}, 5.0, DEFAULT_RETRY_LIMIT),
        ({"timeout": None, "retry_limit": ""}, DEFAULT_TIMEOUT_SECONDS, DEFAULT_RETRY_LIMIT),
        ({"retry_limit": 1}, DEFAULT_TIMEOUT_SECONDS, 1),
        ({"region": "eu"}, DEFAULT_TIMEOUT_SECONDS, DEFAULT_RETRY_LIMIT),
    ],
)
def test_extras(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], timeout: float, retry_limit: int
) -> None:
    s = settings_for(monkeypatch, conn_json(**extra))
    assert s.timeout == timeout
    assert s.retry_limit == retry_limit
    assert isinstance(s.retry_limit, int)


def test_hook_arguments_override_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_for(monkeypatch, conn_json(timeout=5, retry_limit=2), timeout=30, retry_limit=9)
    assert (s.timeout, s.retry_limit) == (30.0, 9)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"timeout": "abc"}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -3}, "timeout"),
        ({"timeout": "nan"}, "timeout"),
        ({"timeout": "inf"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": [5]}, "timeout"),
        ({"retry_limit": 2.5}, "retry_limit"),
        ({"retry_limit": "three"}, "retry_limit"),
        ({"retry_limit": 0}, "retry_limit"),
        ({"extra__gptproto__retry_limit": "-1"}, "retry_limit"),
    ],
)
def test_bad_extras_are_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], field: str
) -> None:
    with pytest.raises(GPTProtoRequestError) as info:
        settings_for(monkeypatch, conn_json(**extra))
    assert info.value.field == field
    assert f"'{field}'" in str(info.value)
    assert ">= 1" in str(info.value)
    assert repr(next(iter(extra.values()))) in str(info.value)


def test_bad_hook_argument_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GPTProtoRequestError) as info:
        settings_for(monkeypatch, conn_json(), timeout=0)
    assert info.value.field == "timeout"


# ------------------------------------------------------------------------------------ headers, key


def test_headers_are_exactly_these() -> None:
    s = ClientSettings(base_url=BASE_URL, api_key=API_KEY)
    assert s.headers() == {
        "Authorization": f"Bearer {API_KEY}",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    assert s.headers(with_body=True) == {**s.headers(), "Content-Type": "application/json"}
    assert USER_AGENT.startswith("airflow-provider-gptproto/")


def test_no_extra_becomes_a_header(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"timeout": 5, "region": "eu", "X-Custom": "1", "Authorization": "Basic x", "proxies": {"a": "b"}}
    s = settings_for(monkeypatch, conn_json(**extra))
    assert set(s.headers(with_body=True)) == {"Authorization", "Accept", "User-Agent", "Content-Type"}
    assert s.headers()["Authorization"] == f"Bearer {API_KEY}"


def test_key_is_not_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_for(monkeypatch, conn_json())
    assert API_KEY not in repr(s)
    assert API_KEY not in str(s)
    assert BASE_URL in repr(s)


def test_redact() -> None:
    s = ClientSettings(base_url=BASE_URL, api_key=API_KEY)
    assert s.redact(f"bad key {API_KEY}!") == "bad key ***!"
    assert s.redact("nothing here") == "nothing here"


@pytest.fixture
def masked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every key sent to Airflow's masker, sync or async, in a process that has masked none yet."""
    sent: list[str] = []

    async def amask(key: str) -> None:
        sent.append(key)

    monkeypatch.setattr(_masking, "mask_secret", sent.append)
    monkeypatch.setattr(_masking, "_async_masker", lambda: amask)
    monkeypatch.setattr(_masking, "MASKED_KEYS", set())
    return sent


def test_key_is_registered_with_the_secrets_masker(
    monkeypatch: pytest.MonkeyPatch, masked: list[str]
) -> None:
    settings_for(monkeypatch, conn_json())
    assert masked == [API_KEY]


def test_key_is_registered_once_per_process(monkeypatch: pytest.MonkeyPatch, masked: list[str]) -> None:
    """Every hook of a triggerer resolves its connection; only the first key costs a round trip."""
    set_conn(monkeypatch, conn_json(), "gptproto_mask_a")
    set_conn(monkeypatch, conn_json(password="sk-another-key-000000000000"), "gptproto_mask_b")
    for conn_id in ("gptproto_mask_a", "gptproto_mask_a", "gptproto_mask_b"):
        assert GPTProtoHook(conn_id).settings
    assert masked == [API_KEY, "sk-another-key-000000000000"]


async def test_hooks_resolving_together_register_their_key_once_with_an_async_call(
    monkeypatch: pytest.MonkeyPatch, masked: list[str]
) -> None:
    """The triggers' path: no sync call (in a trigger's own task it would find no greenback portal)."""
    set_conn(monkeypatch, conn_json(), "gptproto_amask")
    monkeypatch.setattr(_masking, "mask_secret", lambda key: pytest.fail("the sync masker was called"))
    resolved: list[ClientSettings] = []
    others_resolved = asyncio.Event()

    async def round_trip(key: str) -> None:
        """The supervisor answers once the other 19 hooks have their settings (a cap: 5 s)."""
        masked.append(key)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(others_resolved.wait(), 5)

    async def resolve() -> ClientSettings:
        settings = await GPTProtoHook("gptproto_amask").aget_settings()
        resolved.append(settings)
        if len(resolved) == 19:
            others_resolved.set()
        return settings

    monkeypatch.setattr(_masking, "_async_masker", lambda: round_trip)
    settings = await asyncio.gather(*(resolve() for _ in range(20)))
    assert {s.api_key for s in settings} == {API_KEY}
    assert masked == [API_KEY]


def test_the_async_masker_is_airflows_own_where_it_has_one() -> None:
    """3.3+: ``amask_secret``; before, the sync one wrapped for a thread (its channel refuses the loop's)."""
    masker = _masking._async_masker()
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:
        assert type(masker).__name__ == "SyncToAsync"
        assert masker.func is _masking.mask_secret  # type: ignore[attr-defined]
    else:
        assert masker is amask_secret


async def test_a_key_whose_masking_failed_is_sent_again_by_the_next_hook(
    monkeypatch: pytest.MonkeyPatch, masked: list[str]
) -> None:
    set_conn(monkeypatch, conn_json(), "gptproto_remask")
    attempts: list[str] = []

    async def broken(key: str) -> None:
        attempts.append(key)
        raise RuntimeError("supervisor channel closed")

    monkeypatch.setattr(_masking, "_async_masker", lambda: broken)
    with pytest.raises(RuntimeError, match="channel closed"):
        await GPTProtoHook("gptproto_remask").aget_settings()
    assert API_KEY not in _masking.MASKED_KEYS

    async def working(key: str) -> None:
        attempts.append(key)

    monkeypatch.setattr(_masking, "_async_masker", lambda: working)
    assert (await GPTProtoHook("gptproto_remask").aget_settings()).api_key == API_KEY
    assert attempts == [API_KEY, API_KEY]
    assert API_KEY in _masking.MASKED_KEYS


def test_settings_are_resolved_once_per_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, conn_json(), "gptproto_once")
    hook = GPTProtoHook("gptproto_once")
    lookups: list[str] = []
    original = GPTProtoHook.get_connection

    def counting(conn_id: str) -> Any:
        lookups.append(conn_id)
        return original(conn_id)

    monkeypatch.setattr(hook, "get_connection", counting)
    assert hook.settings is hook.settings
    assert lookups == ["gptproto_once"]


async def test_the_supervisor_hears_the_key_from_a_loop_whose_sync_channel_refuses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A triggerer's channel to its supervisor: sync sends from the loop's thread fail (3.0.6 raises;
    3.3 needs a greenback portal, which a wait in its own task lacks), async ones work."""
    from airflow.sdk.execution_time import task_runner
    from asgiref.sync import async_to_sync

    loop_thread, heard = threading.get_ident(), []

    class TriggerComms:
        def send(self, msg: Any) -> Any:
            if threading.get_ident() == loop_thread:
                raise RuntimeError("sync send from the event loop's thread")
            return async_to_sync(self.asend)(msg)

        async def asend(self, msg: Any) -> None:
            heard.append(msg.value)

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", TriggerComms(), raising=False)
    monkeypatch.setattr(_masking, "MASKED_KEYS", set())
    await _masking.amask_key("sk-heard-by-the-supervisor-0001")
    await _masking.amask_key("sk-heard-by-the-supervisor-0001")
    assert heard == ["sk-heard-by-the-supervisor-0001"]
    assert "sk-heard-by-the-supervisor-0001" in _masking.MASKED_KEYS
