"""When to resend a request, and how long to wait: one policy for the sync and async paths.

Reads and DELETE are retried on 429, 5xx, malformed replies and connection errors. A create costs
money: it is resent only when the server provably did not act on it (never connected, 429, 503).
"""

from __future__ import annotations

from typing import Any

from tenacity import RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from airflow_provider_gptproto.exceptions import (
    GPTProtoAPIError,
    GPTProtoConnectionError,
    GPTProtoContentPolicyError,
    GPTProtoRateLimitError,
    GPTProtoResponseError,
    GPTProtoServerError,
)


def is_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """Whether ``exc`` is worth another attempt of the same request."""
    if isinstance(exc, GPTProtoContentPolicyError):
        return False
    if isinstance(exc, GPTProtoRateLimitError):
        return True
    if isinstance(exc, GPTProtoServerError):
        return idempotent or exc.http_status == 503
    if isinstance(exc, GPTProtoConnectionError):
        return idempotent or not exc.request_sent
    if isinstance(exc, GPTProtoResponseError):
        return idempotent
    return False


def is_ambiguous_create_failure(exc: BaseException) -> bool:
    """A create failure after which a task may exist on the server."""
    if isinstance(exc, GPTProtoContentPolicyError):
        return False
    if isinstance(exc, GPTProtoServerError):
        return exc.http_status != 503
    if isinstance(exc, GPTProtoConnectionError):
        return exc.request_sent
    return isinstance(exc, GPTProtoResponseError)


class _WaitRetryAfter:
    """Honour a server's Retry-After hint; otherwise exponential backoff with full jitter."""

    def __init__(self, max_wait: float) -> None:
        self.max_wait = max_wait
        self._fallback = wait_random_exponential(multiplier=0.5, max=max_wait)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = exc.retry_after if isinstance(exc, GPTProtoAPIError) else None
        if hint is not None:
            return min(hint, self.max_wait)
        return float(self._fallback(state))


def retry_kwargs(*, idempotent: bool, attempts: int, max_wait: float) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` / ``AsyncRetrying``."""
    return {
        "stop": stop_after_attempt(max(1, attempts)),
        "wait": _WaitRetryAfter(max_wait),
        "retry": retry_if_exception(lambda exc: is_retryable(exc, idempotent=idempotent)),
        "reraise": True,
    }
