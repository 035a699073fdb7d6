"""Error bodies in the shapes the API contract (docs/api-contract.md) documents.

GPTProto's own shape (``{"error": {"message", "type", "code"}}``) is used by the envelope
and predictions dialects; the upstream Ark shape (``{"error": {"code", "message",
"param", "type"}}``) by the ark dialect, because the official Ark SDK parses it. Fault
rules can ask for any shape explicitly, including the ``type``-is-the-status variant.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Literal

ErrorKind = Literal[
    "invalid_parameter",
    "missing_parameter",
    "invalid_json",
    "invalid_task_id",
    "auth",
    "not_found",
    "invalid_state",
    "policy",
    "rate_limit",
    "server",
    "unavailable",
    "forbidden",
]
BodyShape = Literal["auto", "gptproto", "signature", "ark", "empty", "text"]
BODY_SHAPES: tuple[str, ...] = ("auto", "gptproto", "signature", "ark", "empty", "text")

# kind -> (HTTP status, GPTProto type, GPTProto code, Ark code, Ark type)
_KINDS: dict[str, tuple[int, str, str, str, str]] = {
    "invalid_parameter": (
        400,
        "invalid_request_error",
        "invalid_parameters",
        "InvalidParameter",
        "BadRequest",
    ),
    "missing_parameter": (
        400,
        "invalid_request_error",
        "invalid_parameters",
        "MissingParameter",
        "BadRequest",
    ),
    "invalid_json": (400, "invalid_request_error", "invalid_parameters", "InvalidParameter", "BadRequest"),
    "invalid_task_id": (400, "invalid_request_error", "invalid_parameters", "InvalidParameter", "BadRequest"),
    "auth": (401, "invalid_request_error", "invalid_api_key", "AuthenticationError", "Unauthorized"),
    "forbidden": (403, "permission_error", "insufficient_permissions", "AccessDenied", "Forbidden"),
    "not_found": (404, "invalid_request_error", "not_found", "ResourceNotFound", "NotFound"),
    "invalid_state": (400, "invalid_request_error", "invalid_parameters", "InvalidParameter", "BadRequest"),
    "policy": (
        400,
        "invalid_request_error",
        "content_policy_violation",
        "InputTextSensitiveContentDetected",
        "BadRequest",
    ),
    "rate_limit": (
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
        "RateLimitExceeded.EndpointRPMExceeded",
        "TooManyRequests",
    ),
    "server": (500, "server_error", "internal_error", "InternalServiceError", "InternalServerError"),
    "unavailable": (503, "server_error", "service_unavailable", "ServerOverloaded", "ServiceUnavailable"),
}

# Defaults used when a fault rule asks for a bare HTTP status.
_STATUS_KIND = {
    400: "invalid_parameter",
    401: "auth",
    403: "forbidden",
    404: "not_found",
    429: "rate_limit",
    500: "server",
    502: "server",
    503: "unavailable",
    504: "unavailable",
}
_DEFAULT_MESSAGES = {
    400: "Invalid request parameters",
    401: "Invalid authentication credentials",
    403: "Insufficient balance",
    404: "Not found",
    429: "Rate limit exceeded",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}


def new_request_id() -> str:
    """Ark-style request id, quoted at the end of Ark error messages."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(10)


class ApiError(Exception):
    """Raised by route handlers; rendered per dialect by the app's exception handler."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        param: str = "",
        status: int | None = None,
        ark_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param
        self.status = status if status is not None else _KINDS[kind][0]
        self.ark_message = ark_message or message


def gptproto_body(kind: str, message: str) -> dict[str, Any]:
    _, err_type, code, _, _ = _KINDS[kind]
    return {"error": {"message": message, "type": err_type, "code": code}}


def ark_body(kind: str, message: str, param: str, request_id: str) -> dict[str, Any]:
    _, _, _, code, err_type = _KINDS[kind]
    return {
        "error": {
            "code": code,
            "message": f"{message} Request id: {request_id}",
            "param": param,
            "type": err_type,
        }
    }


def render_api_error(err: ApiError, dialect: str, request_id: str) -> dict[str, Any]:
    """The body for a handler error in the active dialect."""
    if err.kind == "policy" and err.status == 503:
        # GPTProto documents "503 Content policy violation" in the type-is-the-status shape.
        return {"error": {"message": err.message, "type": "503"}}
    if dialect == "ark":
        return ark_body(err.kind, err.ark_message, err.param, request_id)
    return gptproto_body(err.kind, err.message)


def fault_error_body(
    shape: str,
    status: int,
    dialect: str,
    request_id: str,
    message: str | None = None,
    code: str | None = None,
    err_type: str | None = None,
) -> tuple[bytes, str]:
    """Body and content type of an injected error response; ``shape`` is one of BODY_SHAPES."""
    kind = _STATUS_KIND.get(status, "server" if status >= 500 else "invalid_parameter")
    text = message or _DEFAULT_MESSAGES.get(status, f"HTTP {status}")
    if shape == "auto":
        shape = "ark" if dialect == "ark" else "gptproto"
    if shape == "empty":
        return b"", "application/json"
    if shape == "text":
        return text.encode(), "text/plain; charset=utf-8"
    body: dict[str, Any]
    if shape == "signature":
        body = {"error": {"message": text, "type": err_type or str(status)}}
        if code:
            body["error"]["code"] = code
    elif shape == "ark":
        body = ark_body(kind, text, "", request_id)
        body["error"]["code"] = code or body["error"]["code"]
        body["error"]["type"] = err_type or body["error"]["type"]
    else:
        body = gptproto_body(kind, text)
        body["error"]["code"] = code or body["error"]["code"]
        body["error"]["type"] = err_type or body["error"]["type"]
    return json.dumps(body).encode(), "application/json"
