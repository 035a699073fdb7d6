"""GPTProtoHook's sync API against ``responses`` stubs: headers, session reuse, retries, create safety."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
from responses.registries import OrderedRegistry
from urllib3.exceptions import ProtocolError

from airflow_provider_gptproto.exceptions import (
    GPTProtoAuthError,
    GPTProtoBadRequestError,
    GPTProtoConnectionError,
    GPTProtoContentPolicyError,
    GPTProtoNotFoundError,
    GPTProtoRateLimitError,
    GPTProtoRequestError,
    GPTProtoResponseError,
    GPTProtoServerError,
    GPTProtoTaskFailedError,
    GPTProtoTaskMayExistError,
    GPTProtoTimeoutError,
)
from airflow_provider_gptproto.hooks._settings import USER_AGENT
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.models import DEFAULT_MODEL, TaskStatus, VideoGenerationRequest

from .conftest import API_KEY, BASE_URL, TASKS_URL, LogCapture, Sleeps, conn_json, free_port, set_conn
from .fakes import patched_clock

# requests adds these itself; everything else on the wire is ours.
TRANSPORT_HEADERS = {"Accept-Encoding", "Connection", "Content-Length"}
SEED_PAYLOAD = {
    "model": DEFAULT_MODEL,
    "prompt": "a fox",
    "loop": False,
    "duration": "5s",
    "dimension": "768:768",
}
CREATED = {"code": 0, "message": "Success", "data": {"task_id": "task_new", "status": "pending"}}


def without_drawn_seed(body: Any) -> dict[str, Any]:
    """A create body without the seed the hook drew (none was asked for); checks that one was."""
    payload = dict(json.loads(body))
    seed = payload.pop("seed")
    assert isinstance(seed, int) and 1 <= seed <= 2_147_483_647
    return payload


@pytest.fixture(autouse=True)
def _no_real_sleep(sleeps: Sleeps) -> Sleeps:
    return sleeps


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def ordered() -> Iterator[responses.RequestsMock]:
    """Replies served strictly in registration order, each exactly once."""
    with responses.RequestsMock(assert_all_requests_are_fired=True, registry=OrderedRegistry) as mock:
        yield mock


def task_url(task_id: str) -> str:
    return f"{TASKS_URL}/{task_id}"


def task_b(task_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"id": task_id, "model": DEFAULT_MODEL, "status": status, **extra}


def sent(mock: responses.RequestsMock, method: str | None = None) -> list[Any]:
    return [c.request for c in mock.calls if method is None or c.request.method == method]


def query(request: Any) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(request.url).query)


def dropped() -> requests.exceptions.ConnectionError:
    """What requests raises when the server closes the socket after receiving the request."""
    reason = http.client.RemoteDisconnected("Remote end closed connection without response")
    return requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", reason))


# ------------------------------------------------------------------------------- headers, session


def test_get_headers_are_exactly_auth_accept_user_agent(
    monkeypatch: pytest.MonkeyPatch, rsps: responses.RequestsMock
) -> None:
    set_conn(monkeypatch, conn_json(timeout=5, region="eu", **{"X-Custom": "1", "verify": False}))
    rsps.get(task_url("t1"), json=task_b("t1", "running"))
    GPTProtoHook().get_task("t1")
    request = sent(rsps)[0]
    assert set(request.headers) - TRANSPORT_HEADERS == {"Authorization", "Accept", "User-Agent"}
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.req_kwargs["timeout"] == (10.0, 5.0)


def test_post_adds_content_type_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch, rsps: responses.RequestsMock
) -> None:
    set_conn(monkeypatch, conn_json(timeout=5, region="eu"))
    rsps.post(TASKS_URL, json=CREATED)
    GPTProtoHook().create_task({"prompt": "a fox"})
    request = sent(rsps)[0]
    assert set(request.headers) - TRANSPORT_HEADERS == {
        "Authorization",
        "Accept",
        "User-Agent",
        "Content-Type",
    }
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert without_drawn_seed(request.body) == SEED_PAYLOAD


def test_one_session_is_reused_across_calls(
    hook: GPTProtoHook, rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[requests.Session] = []
    original_init = requests.Session.__init__

    def counting_init(self: requests.Session) -> None:
        created.append(self)
        original_init(self)

    monkeypatch.setattr(requests.Session, "__init__", counting_init)
    rsps.get(task_url("t1"), json=task_b("t1", "running"))
    rsps.delete(task_url("t1"), json={})
    rsps.get(TASKS_URL, json={"items": [], "total": 0})
    rsps.post(TASKS_URL, json=CREATED)
    for _ in range(3):
        hook.get_task("t1")
    hook.cancel_task("t1")
    hook.list_tasks()
    hook.create_task({"prompt": "a fox"})
    assert len(created) == 1
    assert hook.get_conn() is created[0]
    hook.close()
    assert hook.get_conn() is not created[0]  # a fresh session after close()


def test_task_id_is_path_escaped(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.get(f"{TASKS_URL}/a%2Fb%3Fc", json=task_b("a/b?c", "running"))
    assert hook.get_task("a/b?c").task_id == "a/b?c"


@pytest.mark.parametrize("bad", ["", "   ", None, 5])
def test_empty_task_id_is_rejected_before_sending(
    hook: GPTProtoHook, rsps: responses.RequestsMock, bad: Any
) -> None:
    with pytest.raises(GPTProtoRequestError) as info:
        hook.get_task(bad)
    assert info.value.field == "task_id"
    assert not rsps.calls


# ------------------------------------------------------------------------------- get + retries


def test_get_task_parses_reply(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.get(task_url("t1"), json=task_b("t1", "succeeded", content={"video_url": "https://cdn/v.mp4"}))
    task = hook.get_task("t1")
    assert task.status is TaskStatus.SUCCEEDED
    assert task.video_url == "https://cdn/v.mp4"


def test_get_retried_on_429_honouring_retry_after_seconds(
    hook: GPTProtoHook, ordered: responses.RequestsMock, sleeps: Sleeps
) -> None:
    ordered.get(task_url("t1"), status=429, headers={"Retry-After": "7"}, json={"error": {"message": "slow"}})
    ordered.get(task_url("t1"), json=task_b("t1", "running"))
    assert hook.get_task("t1").status is TaskStatus.RUNNING
    assert sleeps.calls == [7.0]


def test_get_retried_on_429_honouring_retry_after_http_date(
    hook: GPTProtoHook, ordered: responses.RequestsMock, sleeps: Sleeps
) -> None:
    when = format_datetime(datetime.fromtimestamp(time.time() + 20, tz=timezone.utc), usegmt=True)
    ordered.get(task_url("t1"), status=429, headers={"Retry-After": when})
    ordered.get(task_url("t1"), json=task_b("t1", "running"))
    hook.get_task("t1")
    assert len(sleeps.calls) == 1
    assert 15 <= sleeps.calls[0] <= 20


def test_retry_after_is_capped_by_max_retry_wait(
    gptproto_conn: str, ordered: responses.RequestsMock, sleeps: Sleeps
) -> None:
    ordered.get(task_url("t1"), status=429, headers={"Retry-After": "3600"})
    ordered.get(task_url("t1"), json=task_b("t1", "running"))
    GPTProtoHook(gptproto_conn, max_retry_wait=4).get_task("t1")
    assert sleeps.calls == [4]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_get_retried_on_5xx_with_bounded_backoff(
    gptproto_conn: str, ordered: responses.RequestsMock, sleeps: Sleeps, status: int
) -> None:
    ordered.get(task_url("t1"), status=status, body="<html>oops</html>")
    ordered.get(task_url("t1"), status=status, json={"error": {"message": "busy"}})
    ordered.get(task_url("t1"), json=task_b("t1", "queued"))
    assert GPTProtoHook(gptproto_conn, max_retry_wait=2).get_task("t1").status is TaskStatus.PENDING
    assert len(sleeps.calls) == 2
    assert all(0 <= s <= 2 for s in sleeps.calls)


def test_get_retried_on_connection_errors(
    hook: GPTProtoHook,
    ordered: responses.RequestsMock,
    refused_error: requests.exceptions.ConnectionError,
) -> None:
    ordered.get(task_url("t1"), body=refused_error)
    ordered.get(task_url("t1"), body=dropped())
    ordered.get(task_url("t1"), json=task_b("t1", "running"))
    assert hook.get_task("t1").status is TaskStatus.RUNNING


def test_get_retried_on_read_timeout_and_malformed_json(
    hook: GPTProtoHook, ordered: responses.RequestsMock
) -> None:
    ordered.get(task_url("t1"), body=requests.exceptions.ReadTimeout("read timed out"))
    ordered.get(task_url("t1"), body='{"id": "t1", "status": ')
    ordered.get(task_url("t1"), json=task_b("t1", "running"))
    assert hook.get_task("t1").status is TaskStatus.RUNNING


def test_get_gives_up_after_retry_limit(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.get(task_url("t1"), status=500, json={"error": {"message": "down"}})
    with pytest.raises(GPTProtoServerError, match="HTTP 500: down"):
        hook.get_task("t1")
    assert len(rsps.calls) == 3  # retry_limit=3 in the fixture connection


def test_unknown_status_is_retried_then_reported(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.get(task_url("t1"), json=task_b("t1", "dreaming"))
    with pytest.raises(GPTProtoResponseError, match="dreaming"):
        hook.get_task("t1")


def test_retry_limit_one_means_no_retry(
    monkeypatch: pytest.MonkeyPatch, rsps: responses.RequestsMock
) -> None:
    set_conn(monkeypatch, conn_json(retry_limit=1))
    rsps.get(task_url("t1"), status=503)
    with pytest.raises(GPTProtoServerError):
        GPTProtoHook().get_task("t1")
    assert len(rsps.calls) == 1


@pytest.mark.parametrize(
    ("status", "payload", "exc"),
    [
        (400, {"error": {"message": "bad", "code": "InvalidParameter"}}, GPTProtoBadRequestError),
        (401, {"error": {"message": "Invalid signature", "type": "401"}}, GPTProtoAuthError),
        (
            403,
            {"error": {"message": "Insufficient balance", "code": "insufficient_permissions"}},
            GPTProtoAuthError,
        ),
        (404, {"error": {"message": "task not found"}}, GPTProtoNotFoundError),
        (503, {"error": {"message": "Content policy violation"}}, GPTProtoContentPolicyError),
    ],
)
def test_get_not_retried_on_client_errors_and_content_policy(
    hook: GPTProtoHook,
    rsps: responses.RequestsMock,
    status: int,
    payload: dict[str, Any],
    exc: type[Exception],
) -> None:
    rsps.get(task_url("t1"), status=status, json=payload)
    with pytest.raises(exc):
        hook.get_task("t1")
    assert len(rsps.calls) == 1


def test_empty_success_body_is_an_empty_object(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.delete(task_url("t1"), status=204, body="")
    assert hook.cancel_task("t1") is None


# ------------------------------------------------------------------------------- create


@pytest.mark.parametrize(
    "reply",
    [
        CREATED,
        {"id": "task_new"},
        {"data": {"id": "task_new"}},
        {"task_id": "task_new"},
    ],
)
def test_create_accepts_every_reply_shape(
    hook: GPTProtoHook, rsps: responses.RequestsMock, reply: Any
) -> None:
    rsps.post(TASKS_URL, json=reply)
    task = hook.create_task(VideoGenerationRequest.build(prompt="a fox"))
    assert task.task_id == "task_new"
    assert task.status is TaskStatus.PENDING
    assert without_drawn_seed(sent(rsps)[0].body) == SEED_PAYLOAD
    assert task.seed == json.loads(sent(rsps)[0].body)["seed"]  # the result names the seed it drew


def test_create_sends_upstream_format_when_needed(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.post(TASKS_URL, json={"id": "cgt-1"})
    hook.create_task(
        {"prompt": "a fox", "ratio": "16:9", "duration": 5, "images": "https://img.example.com/a.png"}
    )
    assert without_drawn_seed(sent(rsps)[0].body) == {
        "model": DEFAULT_MODEL,
        "content": [
            {"type": "text", "text": "a fox"},
            {"type": "image_url", "image_url": {"url": "https://img.example.com/a.png"}},
        ],
        "ratio": "16:9",
        "duration": 5,
    }


def test_invalid_request_is_rejected_before_sending(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    with pytest.raises(GPTProtoRequestError) as info:
        hook.create_task({"prompt": "a fox", "dimension": "1920:1080"})
    assert info.value.field == "dimension"
    assert not rsps.calls


def _list_url_matcher(model: str) -> Any:
    return responses.matchers.query_param_matcher(
        {"page_num": "1", "page_size": "100", "filter.model": model}, strict_match=True
    )


AMBIGUOUS_FAILURES = {
    "500": ({"status": 500, "json": {"error": {"message": "internal"}}}, GPTProtoServerError),
    "502-html": ({"status": 502, "body": "<html>bad gateway</html>"}, GPTProtoServerError),
    "read-timeout": ({"body": requests.exceptions.ReadTimeout("read timed out")}, GPTProtoConnectionError),
    "dropped-connection": ({"body": dropped()}, GPTProtoConnectionError),
    "success-without-id": ({"json": {"status": "success"}}, GPTProtoResponseError),
    "not-json": ({"body": "<html>ok</html>"}, GPTProtoResponseError),
}


@pytest.mark.parametrize("name", sorted(AMBIGUOUS_FAILURES))
def test_ambiguous_create_failure_is_not_retried_and_never_resent(
    hook: GPTProtoHook, ordered: responses.RequestsMock, name: str
) -> None:
    """A create whose outcome is unknown is checked through the list endpoint, never sent again."""
    failure, cause = AMBIGUOUS_FAILURES[name]
    old = int(time.time()) - 3600
    ordered.post(TASKS_URL, **failure)
    ordered.get(
        TASKS_URL,
        json={"items": [task_b("older", "succeeded", created_at=old)], "total": 1},
        match=[_list_url_matcher(DEFAULT_MODEL)],
    )
    with pytest.raises(GPTProtoTaskMayExistError) as info:
        hook.create_task({"prompt": "a fox"})
    assert isinstance(info.value.__cause__, cause)
    message = str(info.value)
    assert "Not resubmitting" in message
    assert f"No task of model {DEFAULT_MODEL!r} is listed since the request" in message
    assert "older" not in message  # created an hour before the request: not a candidate
    assert len(sent(ordered, "POST")) == 1


def test_success_without_id_is_reported_clearly(hook: GPTProtoHook, ordered: responses.RequestsMock) -> None:
    ordered.post(TASKS_URL, json={"status": "success"})
    ordered.get(TASKS_URL, json={"items": [], "total": 0})
    with pytest.raises(GPTProtoTaskMayExistError, match="carries no task id") as info:
        hook.create_task({"prompt": "a fox"})
    assert isinstance(info.value.__cause__, GPTProtoResponseError)
    assert "no task id" in str(info.value.__cause__)


@pytest.mark.parametrize(
    "listed",
    [
        # Timestamps are computed when the test runs (not at collection): "created just now".
        lambda: task_b("cgt-recent", "queued", created_at=int(time.time()) + 1),
        lambda: task_b("cgt-recent", "running", created_at=str(int(time.time()))),
        lambda: task_b("cgt-recent", "queued"),  # no created_at: cannot rule it out
    ],
)
def test_ambiguous_create_failure_names_the_new_listed_tasks(
    hook: GPTProtoHook, ordered: responses.RequestsMock, listed: Callable[[], dict[str, Any]]
) -> None:
    ordered.post(TASKS_URL, status=500, json={"error": {"message": "internal"}})
    ordered.get(TASKS_URL, json={"items": [listed()], "total": 1})
    with pytest.raises(GPTProtoTaskMayExistError) as info:
        hook.create_task({"prompt": "a fox"})
    assert "cgt-recent" in str(info.value)
    assert DEFAULT_MODEL in str(info.value)
    assert isinstance(info.value.__cause__, GPTProtoServerError)
    assert len(sent(ordered, "POST")) == 1


def test_success_without_id_and_listed_task_names_the_candidate(
    hook: GPTProtoHook, ordered: responses.RequestsMock
) -> None:
    ordered.post(TASKS_URL, json={"status": "success"})
    ordered.get(TASKS_URL, json={"items": [task_b("cgt-mine", "queued", created_at=int(time.time()))]})
    with pytest.raises(GPTProtoTaskMayExistError, match="cgt-mine") as info:
        hook.create_task({"prompt": "a fox"})
    assert isinstance(info.value.__cause__, GPTProtoResponseError)
    assert len(sent(ordered, "POST")) == 1


def test_failed_reconciliation_never_resends(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.post(TASKS_URL, status=500, json={"error": {"message": "internal"}})
    rsps.get(TASKS_URL, status=502, body="<html>bad gateway</html>")
    with pytest.raises(GPTProtoTaskMayExistError, match="Listing recent tasks failed too") as info:
        hook.create_task({"prompt": "a fox"})
    assert "HTTP 502" in str(info.value)
    assert len(sent(rsps, "POST")) == 1
    assert len(sent(rsps, "GET")) == 3  # the list call itself is retried (idempotent)


def test_create_retried_on_429_honouring_retry_after(
    hook: GPTProtoHook, ordered: responses.RequestsMock, sleeps: Sleeps
) -> None:
    ordered.post(
        TASKS_URL, status=429, headers={"Retry-After": "2"}, json={"error": {"type": "rate_limit_error"}}
    )
    ordered.post(TASKS_URL, json=CREATED)
    assert hook.create_task({"prompt": "a fox"}).task_id == "task_new"
    assert sleeps.calls == [2.0]
    assert len(sent(ordered, "POST")) == 2


def test_create_retried_on_503(hook: GPTProtoHook, ordered: responses.RequestsMock) -> None:
    ordered.post(TASKS_URL, status=503, json={"error": {"code": "ServerOverloaded", "message": "busy"}})
    ordered.post(TASKS_URL, json=CREATED)
    assert hook.create_task({"prompt": "a fox"}).task_id == "task_new"


def test_create_retried_on_connection_refused(
    hook: GPTProtoHook, ordered: responses.RequestsMock, refused_error: requests.exceptions.ConnectionError
) -> None:
    ordered.post(TASKS_URL, body=refused_error)
    ordered.post(TASKS_URL, json=CREATED)
    assert hook.create_task({"prompt": "a fox"}).task_id == "task_new"
    assert len(sent(ordered, "POST")) == 2


def test_create_retried_on_connect_timeout(hook: GPTProtoHook, ordered: responses.RequestsMock) -> None:
    ordered.post(TASKS_URL, body=requests.exceptions.ConnectTimeout("connect timed out"))
    ordered.post(TASKS_URL, json=CREATED)
    assert hook.create_task({"prompt": "a fox"}).task_id == "task_new"


def test_create_gives_up_on_429_after_retry_limit(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.post(TASKS_URL, status=429, json={"error": {"message": "slow down", "code": "rate_limit_exceeded"}})
    with pytest.raises(GPTProtoRateLimitError):
        hook.create_task({"prompt": "a fox"})
    assert len(rsps.calls) == 3  # no list call: a 429 is not ambiguous


@pytest.mark.parametrize(
    ("status", "payload", "exc"),
    [
        (503, {"error": {"message": "Content policy violation"}}, GPTProtoContentPolicyError),
        (
            400,
            {"error": {"code": "InputTextSensitiveContentDetected", "message": "no"}},
            GPTProtoContentPolicyError,
        ),
        (
            400,
            {"error": {"message": "Invalid request parameters", "code": "invalid_parameters"}},
            GPTProtoBadRequestError,
        ),
        (401, {"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}, GPTProtoAuthError),
        (403, {"error": {"message": "Insufficient balance"}}, GPTProtoAuthError),
    ],
)
def test_create_not_retried_nor_reconciled_on_definite_rejections(
    hook: GPTProtoHook,
    rsps: responses.RequestsMock,
    status: int,
    payload: dict[str, Any],
    exc: type[Exception],
) -> None:
    rsps.post(TASKS_URL, status=status, json=payload)
    with pytest.raises(exc):
        hook.create_task({"prompt": "a fox"})
    assert len(rsps.calls) == 1


# ------------------------------------------------------------------------------- list, cancel


@pytest.mark.parametrize(
    ("status", "wire"),
    [
        (TaskStatus.PENDING, "queued"),
        (TaskStatus.RUNNING, "running"),
        (TaskStatus.SUCCEEDED, "succeeded"),
        (TaskStatus.FAILED, "failed"),
        (TaskStatus.CANCELLED, "cancelled"),
        (TaskStatus.EXPIRED, "expired"),
        ("pending", "queued"),
        ("Completed", "succeeded"),
        ("processing", "running"),
        ("canceled", "cancelled"),
    ],
)
def test_list_status_filter_mapping(
    hook: GPTProtoHook, rsps: responses.RequestsMock, status: Any, wire: str
) -> None:
    rsps.get(TASKS_URL, json={"items": [], "total": 0})
    hook.list_tasks(status=status)
    assert ("filter.status", wire) in query(sent(rsps)[0])


def test_list_query_params(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.get(TASKS_URL, json={"items": [task_b("a", "queued"), task_b("b", "running")], "total": 2})
    page = hook.list_tasks(task_ids=["a", "b"], model="seedance-x", page_num=2, page_size=500)
    assert query(sent(rsps)[0]) == [
        ("page_num", "2"),
        ("page_size", "500"),
        ("filter.task_ids", "a"),
        ("filter.task_ids", "b"),
        ("filter.model", "seedance-x"),
    ]
    assert [t.task_id for t in page.items] == ["a", "b"]
    assert page.total == 2


def test_list_single_task_id_string_is_one_id(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.get(TASKS_URL, json={"items": [], "total": 0})
    hook.list_tasks(task_ids="task_abc")
    assert [v for k, v in query(sent(rsps)[0]) if k == "filter.task_ids"] == ["task_abc"]


def test_list_defaults(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.get(TASKS_URL, json={"items": [], "total": 0})
    hook.list_tasks()
    assert query(sent(rsps)[0]) == [("page_num", "1"), ("page_size", "100")]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"page_num": 0}, "page_num"),
        ({"page_num": 501}, "page_num"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 501}, "page_size"),
        ({"page_size": True}, "page_size"),
        ({"page_size": "10"}, "page_size"),
        ({"page_num": 1.5}, "page_num"),
        ({"status": "dreaming"}, "status"),
        ({"task_ids": ["a", ""]}, "task_id"),
    ],
)
def test_list_arguments_validated_before_sending(
    hook: GPTProtoHook, rsps: responses.RequestsMock, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(GPTProtoRequestError) as info:
        hook.list_tasks(**kwargs)
    assert info.value.field == field
    assert not rsps.calls


def test_page_bounds_message_names_range(hook: GPTProtoHook) -> None:
    with pytest.raises(GPTProtoRequestError, match="from 1 to 500"):
        hook.list_tasks(page_size=1000)


def test_cancel_task_sends_delete(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.delete(task_url("t1"), json={})
    assert hook.cancel_task("t1") is None
    request = sent(rsps)[0]
    assert request.method == "DELETE"
    assert request.body is None
    assert "Content-Type" not in request.headers


def test_cancel_running_task_is_refused(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.delete(
        task_url("t1"),
        status=400,
        json={"error": {"code": "InvalidParameter", "message": "task is running and cannot be cancelled"}},
    )
    with pytest.raises(GPTProtoBadRequestError, match="cannot be cancelled"):
        hook.cancel_task("t1")
    assert len(rsps.calls) == 1


# ------------------------------------------------------------------------------- wait_for_task


def test_wait_for_task_polls_until_terminal(
    hook: GPTProtoHook, ordered: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = patched_clock(monkeypatch)
    for status in ("queued", "running", "running"):
        ordered.get(task_url("t1"), json=task_b("t1", status))
    ordered.get(task_url("t1"), json=task_b("t1", "succeeded", content={"video_url": "https://cdn/v.mp4"}))
    task = hook.wait_for_task("t1", poll_interval=5)
    assert task.status is TaskStatus.SUCCEEDED
    assert task.video_url == "https://cdn/v.mp4"
    assert clock.sleeps == [5, 5, 5]


def test_wait_for_task_logs_each_status_change_as_an_english_sentence(
    hook: GPTProtoHook, ordered: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch, logs: LogCapture
) -> None:
    patched_clock(monkeypatch)
    for status in ("queued", "running"):
        ordered.get(task_url("t1"), json=task_b("t1", status))
    ordered.get(task_url("t1"), json=task_b("t1", "succeeded", content={"video_url": "https://cdn/v.mp4"}))
    hook.wait_for_task("t1", poll_interval=5)
    text = logs.text()
    for line in (
        "GPTProto task t1 is queued",
        "GPTProto task t1 is running",
        "GPTProto task t1 has succeeded",
    ):
        assert line in text, text
    assert "is succeeded" not in text and "is pending" not in text


@pytest.mark.parametrize(
    "status, says", [("failed", "failed"), ("cancelled", "was cancelled"), ("expired", "expired")]
)
def test_wait_for_task_raises_for_unsuccessful_terminal_tasks(
    hook: GPTProtoHook, rsps: responses.RequestsMock, status: str, says: str
) -> None:
    rsps.get(task_url("t1"), json=task_b("t1", status))
    with pytest.raises(GPTProtoTaskFailedError, match=rf"^GPTProto task t1 {says} \("):
        hook.wait_for_task("t1")


@pytest.mark.parametrize("status", ["failed", "cancelled", "expired"])
def test_wait_for_task_returns_unsuccessful_terminal_tasks_on_request(
    hook: GPTProtoHook, rsps: responses.RequestsMock, status: str
) -> None:
    rsps.get(task_url("t1"), json=task_b("t1", status))
    assert hook.wait_for_task("t1", raise_on_failure=False).status.value == status


def test_wait_for_task_absolute_deadline(
    hook: GPTProtoHook, rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = patched_clock(monkeypatch)
    rsps.get(task_url("t1"), json=task_b("t1", "running"))
    deadline = clock.now + 25
    with pytest.raises(GPTProtoTimeoutError, match=r"t1 did not finish by its deadline \(still running"):
        hook.wait_for_task("t1", poll_interval=10, deadline=deadline)
    assert clock.sleeps == [10, 10, 5]  # the third sleep is cut to the deadline
    assert clock.now <= deadline
    assert len(rsps.calls) == 3


def test_wait_for_task_deadline_already_passed(
    hook: GPTProtoHook, rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = patched_clock(monkeypatch)
    rsps.get(task_url("t1"), json=task_b("t1", "queued"))
    with pytest.raises(GPTProtoTimeoutError):
        hook.wait_for_task("t1", poll_interval=10, deadline=clock.now - 1)
    assert clock.sleeps == []
    assert len(rsps.calls) == 1


def test_wait_for_task_terminal_at_the_deadline_is_returned(
    hook: GPTProtoHook, rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = patched_clock(monkeypatch)
    rsps.get(task_url("t1"), json=task_b("t1", "succeeded"))
    assert hook.wait_for_task("t1", deadline=clock.now - 100).status is TaskStatus.SUCCEEDED


def test_wait_for_task_relative_timeout_and_deadline_take_the_earlier(
    hook: GPTProtoHook, rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = patched_clock(monkeypatch)
    rsps.get(task_url("t1"), json=task_b("t1", "running"))
    with pytest.raises(GPTProtoTimeoutError):
        hook.wait_for_task("t1", poll_interval=1, timeout=3, deadline=clock.now + 1000)
    assert sum(clock.sleeps) <= 3


# ------------------------------------------------------------------------------- test_connection


def test_test_connection_ok_on_404_probe(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.get(task_url("airflow-connection-test"), status=404, json={"error": {"message": "task not found"}})
    ok, message = hook.test_connection()
    assert ok is True
    assert BASE_URL in message
    assert "accepted" in message
    assert sent(rsps)[0].method == "GET"


def test_test_connection_ok_on_400_probe(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.get(task_url("airflow-connection-test"), status=400, json={"error": {"message": "invalid task id"}})
    assert hook.test_connection()[0] is True


@pytest.mark.parametrize("status", [401, 403])
def test_test_connection_key_rejected(
    hook: GPTProtoHook, rsps: responses.RequestsMock, logs: LogCapture, status: int
) -> None:
    rsps.get(
        task_url("airflow-connection-test"),
        status=status,
        json={"error": {"message": f"Incorrect API key provided: {API_KEY}", "code": "invalid_api_key"}},
    )
    ok, message = hook.test_connection()
    assert ok is False
    assert "key was rejected" in message
    assert API_KEY not in message
    assert "***" in message
    assert len(rsps.calls) == 1
    assert API_KEY not in logs.text()


def test_test_connection_server_error_is_not_retried(
    hook: GPTProtoHook, rsps: responses.RequestsMock
) -> None:
    rsps.get(task_url("airflow-connection-test"), status=500, json={"error": {"message": "down"}})
    ok, message = hook.test_connection()
    assert ok is False
    assert "Unexpected reply" in message
    assert "HTTP 500" in message
    assert len(rsps.calls) == 1


def test_test_connection_unreachable_host(monkeypatch: pytest.MonkeyPatch, logs: LogCapture) -> None:
    set_conn(monkeypatch, f"gptproto://:{API_KEY}@127.0.0.1:{free_port()}/http")
    started = time.monotonic()
    ok, message = GPTProtoHook().test_connection()
    assert ok is False
    assert message.startswith("Cannot reach the GPTProto API")
    assert "127.0.0.1" in message
    assert API_KEY not in message
    assert time.monotonic() - started < 5  # one attempt, no retries
    assert API_KEY not in logs.text()


def test_test_connection_without_key(monkeypatch: pytest.MonkeyPatch, rsps: responses.RequestsMock) -> None:
    set_conn(monkeypatch, conn_json(password=None))
    ok, message = GPTProtoHook().test_connection()
    assert ok is False
    assert "no API key" in message
    assert "rejected by the server" not in message
    assert not rsps.calls


def test_test_connection_with_bad_extras(
    monkeypatch: pytest.MonkeyPatch, rsps: responses.RequestsMock
) -> None:
    set_conn(monkeypatch, conn_json(timeout="soon"))
    ok, message = GPTProtoHook().test_connection()
    assert ok is False
    assert "timeout" in message
    assert not rsps.calls


def test_test_connection_missing_connection_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = GPTProtoHook("gptproto_does_not_exist").test_connection()
    assert ok is False
    assert "gptproto_does_not_exist" in message


# ------------------------------------------------------------------------------- key never leaks


def test_key_echoed_by_server_is_redacted_everywhere(
    hook: GPTProtoHook, ordered: responses.RequestsMock, logs: LogCapture
) -> None:
    echo = {"error": {"message": f"bad token {API_KEY}", "code": f"key_{API_KEY}"}}
    ordered.get(task_url("t1"), status=500, json=echo)  # retried: the retry log line includes the error
    ordered.get(task_url("t1"), status=500, json=echo)
    ordered.get(task_url("t1"), status=500, json=echo)
    with pytest.raises(GPTProtoServerError) as info:
        hook.get_task("t1")
    assert API_KEY not in str(info.value)
    assert API_KEY not in info.value.message
    assert API_KEY not in repr(info.value)
    assert "bad token ***" in str(info.value)
    text = logs.text()
    assert "retrying" in text  # the retry warnings were captured ...
    assert API_KEY not in text  # ... and carry no key


def test_key_echoed_in_non_json_success_is_redacted(hook: GPTProtoHook, rsps: responses.RequestsMock) -> None:
    rsps.get(task_url("t1"), body=f"hello {API_KEY}")
    with pytest.raises(GPTProtoResponseError) as info:
        hook.get_task("t1")
    assert API_KEY not in str(info.value)


def test_key_echoed_in_http_200_error_envelope_is_redacted(
    hook: GPTProtoHook, rsps: responses.RequestsMock
) -> None:
    rsps.get(task_url("t1"), json={"code": 401, "message": f"invalid key {API_KEY}", "data": {}})
    with pytest.raises(GPTProtoResponseError, match="code 401") as info:
        hook.get_task("t1")
    assert API_KEY not in str(info.value)


def test_key_never_in_create_errors_or_logs(
    hook: GPTProtoHook, ordered: responses.RequestsMock, logs: LogCapture
) -> None:
    ordered.post(TASKS_URL, status=500, json={"error": {"message": f"upstream said {API_KEY}"}})
    ordered.get(TASKS_URL, json={"items": [task_b("cgt-x", "queued")]})
    with pytest.raises(GPTProtoTaskMayExistError) as info:
        hook.create_task({"prompt": "a fox"})
    assert API_KEY not in str(info.value)
    assert API_KEY not in str(info.value.__cause__)
    assert API_KEY not in logs.text()


def test_key_not_in_connection_error_messages(
    hook: GPTProtoHook, rsps: responses.RequestsMock, refused_error: requests.exceptions.ConnectionError
) -> None:
    rsps.get(task_url("t1"), body=refused_error)
    with pytest.raises(GPTProtoConnectionError) as info:
        hook.get_task("t1")
    assert info.value.request_sent is False
    assert API_KEY not in str(info.value)
    assert "GET" in str(info.value)
