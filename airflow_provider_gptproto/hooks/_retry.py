"""When to resend a request, and how long to wait: one policy for the sync and async paths.

Reads (GET) and DELETE are idempotent and retried on 429, 5xx, malformed replies and connection
errors. A create costs money, so it is resent only when the server provably did not act on it: the
connection was never established, or the server said 429/503 (rejected before processing). Every
other create failure is ambiguous and surfaces to the caller instead of becoming a second paid task.

Waiting for a task is a second, longer-lived policy (:class:`PollBackoff`): every waiter (the
trigger, ``GPTProtoHook.wait_for_task`` and the sensor in poke and reschedule mode) polls once per
interval and rides out transient errors with the same exponential backoff until its deadline, so a
long API outage costs neither an Airflow retry nor a paid task.
"""

from __future__ import annotations

from typing import Any

from tenacity import RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

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


# Errors that waiting cannot fix; every other GPTProtoError while polling is waited out.
PERMANENT_POLL_ERRORS = (GPTProtoAuthError, GPTProtoNotFoundError, GPTProtoBadRequestError)
MAX_POLL_BACKOFF_SECONDS = 300.0


def is_transient_poll_error(exc: BaseException) -> bool:
    """Whether a failed status check should be retried later rather than end the wait."""
    return isinstance(exc, GPTProtoError) and not isinstance(exc, PERMANENT_POLL_ERRORS)


def poll_backoff(poll_interval: float, failures: int, exc: BaseException | None = None) -> float:
    """Seconds before the next status check after ``failures`` consecutive failed ones.

    Doubles the poll interval per failure (capped at :data:`MAX_POLL_BACKOFF_SECONDS`) and never
    waits less than a server's ``Retry-After`` hint.
    """
    delay = min(poll_interval * 2 ** min(max(failures, 1), 8), MAX_POLL_BACKOFF_SECONDS)
    hint = exc.retry_after if isinstance(exc, GPTProtoAPIError) else None
    return min(max(delay, hint or 0.0), MAX_POLL_BACKOFF_SECONDS)


class PollBackoff:
    """Consecutive status-check failures of one waiter, and the backoff they earn (logged)."""

    def __init__(self, poll_interval: float, log: Any, what: str, failures: int = 0) -> None:
        self.poll_interval = poll_interval
        self.log = log
        self.what = what
        self.failures = failures

    def failed(self, exc: BaseException) -> float:
        """Count a transient failure; return (and log) the delay before the next check."""
        self.failures += 1
        delay = poll_backoff(self.poll_interval, self.failures, exc)
        self.log.warning(
            "Checking %s failed (%s); transient, failure %d in a row, next check in %.1f s",
            self.what,
            exc,
            self.failures,
            delay,
        )
        return delay

    def succeeded(self) -> None:
        if self.failures:
            self.log.info("Checking %s works again after %d failed checks", self.what, self.failures)
        self.failures = 0
