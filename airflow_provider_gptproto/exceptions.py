"""One exception hierarchy for every way the GPTProto API can say no.

Callers catch :class:`GPTProtoError` for "anything from this provider" and the subclasses when the
reaction differs (re-authenticate, back off, do not retry a content-policy rejection, reconcile a
create whose reply was lost). Messages never contain the API key: they are built from the server's
reply and our own text only.
"""

from __future__ import annotations

import warnings

from airflow.exceptions import AirflowException


class GPTProtoError(AirflowException):
    """Root of every error raised by this provider."""


class GPTProtoResponseError(GPTProtoError):
    """The server answered with something we cannot understand (no id, unknown status, not JSON)."""


class GPTProtoAPIError(GPTProtoError):
    """An HTTP error reply, parsed from any of the documented error shapes."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.http_status = http_status
        self.code = code
        self.error_type = error_type
        self.message = message
        self.retry_after = retry_after
        super().__init__(self.describe())

    def describe(self) -> str:
        parts = [f"HTTP {self.http_status}" if self.http_status else "GPTProto API error"]
        if self.code:
            parts.append(f"code={self.code}")
        return f"{' '.join(parts)}: {self.message}"


class GPTProtoBadRequestError(GPTProtoAPIError):
    """400: the request was rejected as invalid; retrying cannot help."""


class GPTProtoAuthError(GPTProtoAPIError):
    """401/403: the API key was rejected, or the account may not do this (e.g. no balance)."""


class GPTProtoNotFoundError(GPTProtoAPIError):
    """404: the task does not exist (or was deleted, or is older than the retention window)."""


class GPTProtoRateLimitError(GPTProtoAPIError):
    """429: too many requests; ``retry_after`` holds the server's hint when it sent one."""


class GPTProtoServerError(GPTProtoAPIError):
    """5xx other than a content-policy rejection: transient for idempotent calls."""


class GPTProtoContentPolicyError(GPTProtoAPIError):
    """The prompt or output was rejected by content moderation; a retry will be rejected again."""


class GPTProtoTaskMayExistError(GPTProtoError):
    """A create request reached the server but its reply was lost: a paid task may exist. Never
    resubmitted silently; the caller decides whether to reconcile (the list endpoint) or to fail."""


class GPTProtoListUnavailableError(GPTProtoNotFoundError):
    """The API has no list endpoint (404/405 on the list call, an upstream Ark feature GPTProto does
    not document), so a create whose reply was lost cannot be reconciled."""


# How a task's end reads in a sentence, by status word ("GPTProto task t1 was cancelled (...)").
_ENDED = {"failed": "failed", "expired": "expired", "cancelled": "was cancelled"}


class GPTProtoTaskFailedError(GPTProtoError):
    """The remote task ended failed, expired or cancelled."""

    def __init__(self, task_id: str, status: str, code: str | None, message: str | None) -> None:
        self.task_id = task_id
        self.status = status
        self.code = code
        self.error_message = message
        detail = ": ".join(p for p in (code, message) if p) or "no error detail from the server"
        ended = _ENDED.get(status, f"ended {status}")
        super().__init__(f"GPTProto task {task_id} {ended} ({detail})")


class GPTProtoTaskExpiredError(GPTProtoTaskFailedError):
    """The task expired: it did not run within its ``execution_expires_after`` (the flex tier's queue)."""


class GPTProtoTaskContentPolicyError(GPTProtoTaskFailedError):
    """The task failed because of content moderation; re-submitting the same prompt will fail again."""


class GPTProtoTimeoutError(GPTProtoError):
    """The task did not finish before the caller's absolute deadline."""


class GPTProtoRequestError(GPTProtoError, ValueError):
    """A request parameter is invalid (``field`` names it); raised before anything is sent."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class GPTProtoConnectionError(GPTProtoError):
    """The HTTP exchange failed below the API (refused, reset, timed out). ``request_sent`` is False
    only when the request provably never reached the server: only then may a create be resent."""

    def __init__(self, message: str, *, request_sent: bool) -> None:
        self.request_sent = request_sent
        super().__init__(message)


class GPTProtoVideoDownloadError(GPTProtoError):
    """The video could not be fetched or failed verification; nothing was left at the destination."""


class GPTProtoVideoURLExpiredError(GPTProtoVideoDownloadError):
    """The pre-signed URL is no longer valid (403/404/410); a fresh one may come from get_task."""


class GPTProtoURLRefusedError(GPTProtoVideoDownloadError):
    """A URL was refused before any connection to it (scheme, metadata, link-local, private, ...);
    the message names the host and the rule, never the query string (it may carry a signature)."""

    def __init__(self, host: str, rule: str) -> None:
        self.host = host
        self.rule = rule
        super().__init__(f"Refusing to fetch from {host or 'a URL without a host'}: {rule}; nothing written")


class GPTProtoVideoDestinationExistsError(GPTProtoVideoDownloadError):
    """The destination already holds a file and the download was told not to replace it."""


class GPTProtoStitchError(GPTProtoError):
    """A video could not be stitched, or a frame taken from it (unreadable, or no video stream)."""


# The names before the GPTProto prefix: still importable for one release, with a warning. They are
# the same classes, so ``except VideoDownloadError`` still catches every download error.
_DEPRECATED_NAMES: dict[str, type[GPTProtoError]] = {
    "VideoDownloadError": GPTProtoVideoDownloadError,
    "VideoURLExpiredError": GPTProtoVideoURLExpiredError,
    "VideoDestinationExistsError": GPTProtoVideoDestinationExistsError,
}


def __getattr__(name: str) -> type[GPTProtoError]:
    """Resolve a deprecated name to its ``GPTProto``-prefixed class, warning the caller."""
    if name in _DEPRECATED_NAMES:
        new_class = _DEPRECATED_NAMES[name]
        warnings.warn(
            f"airflow_provider_gptproto.exceptions.{name} is deprecated and will be removed in the next "
            f"release: use {new_class.__name__}",
            DeprecationWarning,
            stacklevel=2,
        )
        return new_class
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
