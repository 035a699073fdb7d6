"""Error replies of every documented shape, Retry-After, the exception classes and the retry policy."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tenacity import RetryCallState, Retrying

from airflow_provider_gptproto.exceptions import (
    GPTProtoAPIError,
    GPTProtoAuthError,
    GPTProtoBadRequestError,
    GPTProtoConnectionError,
    GPTProtoContentPolicyError,
    GPTProtoError,
    GPTProtoNotFoundError,
    GPTProtoRateLimitError,
    GPTProtoResponseError,
    GPTProtoServerError,
    GPTProtoTaskContentPolicyError,
    GPTProtoTaskFailedError,
    GPTProtoTimeoutError,
)
from airflow_provider_gptproto.hooks._retry import (
    _WaitRetryAfter,
    is_ambiguous_create_failure,
    is_retryable,
    retry_kwargs,
)
from airflow_provider_gptproto.models import error_from_response, parse_retry_after

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def body(**error: Any) -> str:
    return json.dumps({"error": error})


# ------------------------------------------------------------------------------- body shapes


def test_vendor_shape_400() -> None:
    err = error_from_response(
        400,
        body(message="Invalid request parameters", type="invalid_request_error", code="invalid_parameters"),
    )
    assert type(err) is GPTProtoBadRequestError
    assert (err.http_status, err.code, err.error_type) == (400, "invalid_parameters", "invalid_request_error")
    assert err.message == "Invalid request parameters"
    assert str(err) == "HTTP 400 code=invalid_parameters: Invalid request parameters"


def test_codeless_shape_with_type_as_status() -> None:
    err = error_from_response(401, body(message="Invalid signature", type="401"))
    assert type(err) is GPTProtoAuthError
    assert err.code is None
    assert err.error_type == "401"
    assert str(err) == "HTTP 401: Invalid signature"


def test_upstream_shape() -> None:
    err = error_from_response(
        400,
        body(
            code="InvalidParameter",
            message="The parameter `ratio` is invalid. Request id: 0217",
            param="",
            type="BadRequest",
        ),
    )
    assert type(err) is GPTProtoBadRequestError
    assert err.code == "InvalidParameter"
    assert err.error_type == "BadRequest"
    assert "Request id: 0217" in str(err)


def test_bare_envelope_shape() -> None:
    err = error_from_response(400, json.dumps({"code": 400, "message": "prompt is required"}))
    assert type(err) is GPTProtoBadRequestError
    assert err.message == "prompt is required"


def test_error_as_plain_string() -> None:
    err = error_from_response(422, json.dumps({"error": "model not found"}))
    assert type(err) is GPTProtoBadRequestError
    assert err.message == "model not found"


@pytest.mark.parametrize("status", [400, 404, 429, 500, 502, 503])
def test_html_error_page(status: int) -> None:
    err = error_from_response(
        status, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    )
    assert isinstance(err, GPTProtoAPIError)
    assert err.http_status == status
    assert "non-JSON (HTML) error page" in str(err)


@pytest.mark.parametrize("empty", ["", b"", None, "   \n"])
def test_empty_body(empty: Any) -> None:
    err = error_from_response(500, empty)
    assert type(err) is GPTProtoServerError
    assert "empty reply body (HTTP 500)" in str(err)


def test_unparseable_bytes_body_is_shortened() -> None:
    err = error_from_response(500, b"\xff\xfe" + b"x" * 5000)
    assert type(err) is GPTProtoServerError
    assert "unparseable error body" in str(err)
    assert len(str(err)) < 400


def test_long_message_is_truncated() -> None:
    err = error_from_response(400, body(message="m" * 10_000))
    assert len(err.message) == 300


@pytest.mark.parametrize(
    ("status", "payload", "cls"),
    [
        (
            401,
            body(message="Incorrect API key provided", type="invalid_request_error", code="invalid_api_key"),
            GPTProtoAuthError,
        ),
        (403, body(message="Insufficient balance", code="insufficient_permissions"), GPTProtoAuthError),
        (401, body(code="AuthenticationError", message="The API key is invalid"), GPTProtoAuthError),
        (403, body(code="AccountOverdueError", message="overdue"), GPTProtoAuthError),
        (403, body(code="AccessDenied", message="denied"), GPTProtoAuthError),
        (404, body(code="ModelNotOpen", message="not activated"), GPTProtoNotFoundError),
        (404, body(message="task not found"), GPTProtoNotFoundError),
        (400, body(code="MissingParameter", message="prompt"), GPTProtoBadRequestError),
        (
            429,
            body(message="slow down", type="rate_limit_error", code="rate_limit_exceeded"),
            GPTProtoRateLimitError,
        ),
        (429, body(code="RateLimitExceeded.EndpointRPMExceeded", message="rpm"), GPTProtoRateLimitError),
        (500, body(code="InternalServiceError", message="boom"), GPTProtoServerError),
        (503, body(code="ServerOverloaded", message="busy"), GPTProtoServerError),
        (502, "", GPTProtoServerError),
        (418, "teapot", GPTProtoAPIError),
        (409, body(message="conflict"), GPTProtoAPIError),
    ],
)
def test_status_and_code_mapping(status: int, payload: str, cls: type[GPTProtoAPIError]) -> None:
    err = error_from_response(status, payload)
    assert type(err) is cls
    assert err.http_status == status
    assert isinstance(err, GPTProtoError)


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (503, body(message="Content policy violation")),
        (400, body(message="Content policy violation", type="invalid_request_error")),
        (
            400,
            body(
                code="InputTextSensitiveContentDetected",
                message="The request failed. Request id: 1",
                type="BadRequest",
            ),
        ),
        (400, body(code="InputImageSensitiveContentDetected", message="x")),
        (400, body(code="OutputVideoSensitiveContentDetected", message="x")),
        (400, body(code="content_policy_violation", message="blocked")),
        (503, json.dumps({"code": 503, "message": "Content Policy Violation: NSFW"})),
    ],
)
def test_content_policy_rejection_as_400_or_503(status: int, payload: str) -> None:
    err = error_from_response(status, payload)
    assert type(err) is GPTProtoContentPolicyError
    assert err.http_status == status
    assert not is_retryable(err, idempotent=True)
    assert not is_retryable(err, idempotent=False)
    assert not is_ambiguous_create_failure(err)


# ------------------------------------------------------------------------------- Retry-After


def test_429_with_retry_after_seconds() -> None:
    err = error_from_response(
        429, body(message="slow", type="rate_limit_error", code="rate_limit_exceeded"), "7"
    )
    assert isinstance(err, GPTProtoRateLimitError)
    assert err.retry_after == 7.0


def test_429_with_retry_after_http_date() -> None:
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120), usegmt=True)
    err = error_from_response(429, "", when)
    assert isinstance(err, GPTProtoRateLimitError)
    assert err.retry_after is not None
    assert 100 <= err.retry_after <= 120


def test_503_keeps_retry_after() -> None:
    assert error_from_response(503, body(message="busy"), "3").retry_after == 3.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12", 12.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("Thu, 01 Jan 2026 12:01:00 GMT", 60.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_429_without_retry_after() -> None:
    assert error_from_response(429, "").retry_after is None


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.integers(100, 599), st.binary(max_size=200) | st.text(max_size=200), st.none() | st.text(max_size=40)
)
def test_error_from_response_never_raises(status: int, raw: Any, retry_after: str | None) -> None:
    err = error_from_response(status, raw, retry_after)
    assert isinstance(err, GPTProtoAPIError)
    assert err.http_status == status
    assert err.message
    assert err.retry_after is None or err.retry_after >= 0


# ------------------------------------------------------------------------------- exceptions


def test_task_failed_error_message() -> None:
    err = GPTProtoTaskFailedError("cgt-1", "failed", "InternalServiceError", "boom")
    assert str(err) == "GPTProto task cgt-1 failed (InternalServiceError: boom)"
    cancelled = GPTProtoTaskFailedError("cgt-2", "cancelled", None, None)
    assert str(cancelled) == "GPTProto task cgt-2 was cancelled (no error detail from the server)"
    assert (err.task_id, err.status, err.code, err.error_message) == (
        "cgt-1",
        "failed",
        "InternalServiceError",
        "boom",
    )
    assert "no error detail" in str(GPTProtoTaskFailedError("cgt-2", "expired", None, None))
    assert issubclass(GPTProtoTaskContentPolicyError, GPTProtoTaskFailedError)


def test_every_exception_is_a_provider_error() -> None:
    for cls in (
        GPTProtoResponseError,
        GPTProtoAPIError,
        GPTProtoTimeoutError,
        GPTProtoConnectionError,
        GPTProtoTaskFailedError,
    ):
        assert issubclass(cls, GPTProtoError)


# ------------------------------------------------------------------------------- retry policy


def server(status: int, message: str = "x") -> GPTProtoAPIError:
    return error_from_response(status, body(message=message))


@pytest.mark.parametrize(
    ("exc", "get", "create"),
    [
        (error_from_response(429, ""), True, True),
        (server(500), True, False),
        (server(502), True, False),
        (server(503), True, True),
        (server(503, "Content policy violation"), False, False),
        (server(400), False, False),
        (server(401), False, False),
        (server(403), False, False),
        (server(404), False, False),
        (GPTProtoConnectionError("refused", request_sent=False), True, True),
        (GPTProtoConnectionError("reset", request_sent=True), True, False),
        (GPTProtoResponseError("not json"), True, False),
        (ValueError("bug"), False, False),
    ],
)
def test_is_retryable(exc: BaseException, get: bool, create: bool) -> None:
    assert is_retryable(exc, idempotent=True) is get
    assert is_retryable(exc, idempotent=False) is create


@pytest.mark.parametrize(
    ("exc", "ambiguous"),
    [
        (server(500), True),
        (server(502), True),
        (server(503), False),
        (server(503, "Content policy violation"), False),
        (error_from_response(429, ""), False),
        (server(400), False),
        (GPTProtoConnectionError("read timeout", request_sent=True), True),
        (GPTProtoConnectionError("refused", request_sent=False), False),
        (GPTProtoResponseError("no id"), True),
    ],
)
def test_is_ambiguous_create_failure(exc: BaseException, ambiguous: bool) -> None:
    assert is_ambiguous_create_failure(exc) is ambiguous


def _state_after(exc: BaseException, attempt: int = 1) -> RetryCallState:
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_wait_honours_retry_after_capped_by_max_wait() -> None:
    wait = _WaitRetryAfter(max_wait=30)
    assert wait(_state_after(error_from_response(429, "", "7"))) == 7.0
    assert wait(_state_after(error_from_response(429, "", "3600"))) == 30
    assert wait(_state_after(error_from_response(503, "", "0"))) == 0.0


def test_wait_without_hint_is_jittered_exponential_backoff_within_max() -> None:
    wait = _WaitRetryAfter(max_wait=8)
    waits = {wait(_state_after(server(500), attempt)) for attempt in (1, 2, 3, 4, 5, 6) for _ in range(20)}
    assert all(0 <= w <= 8 for w in waits)
    assert len(waits) > 10  # jitter: not one fixed value


def test_retry_kwargs_stop_after_attempts() -> None:
    calls: list[int] = []

    def fail() -> None:
        calls.append(1)
        raise server(500)

    kwargs = retry_kwargs(idempotent=True, attempts=4, max_wait=0)
    with pytest.raises(GPTProtoServerError):
        Retrying(**kwargs)(fail)
    assert len(calls) == 4

    calls.clear()
    with pytest.raises(GPTProtoServerError):
        Retrying(**retry_kwargs(idempotent=False, attempts=4, max_wait=0))(fail)
    assert len(calls) == 1
