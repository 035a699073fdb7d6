"""Raw ASGI middleware: request log and stats for every API/media call, and fault injection.

It is raw ASGI (not ``BaseHTTPMiddleware``) because some faults must act below the level
of an HTTP response: dropping the TCP connection before or after the request is handled,
or cutting a body short after its headers promised more. Dropping needs the connection's
transport, which the emulator's server puts into ``scope["state"]`` (see server.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from http import HTTPStatus
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import TASKS_PATH
from .errors import fault_error_body, new_request_id
from .faults import FaultRule
from .observe import MEDIA_ENDPOINTS, RequestRecord, redact_query
from .state import EmulatorState

TRANSPORT_KEY = "gptproto_emulator.transport"
_TASK_RE = re.compile(re.escape(TASKS_PATH) + r"/([^/]+)")
_PREDICTION_RE = re.compile(r"/api/v3/predictions/([^/]+)/result")
_MEDIA_RE = re.compile(r"/_emulator/videos/([^/]+)\.(mp4|png)")
_HTML_PAGE = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_MALFORMED = {
    "ark": b'{"id": "cgt-2025',
    "predictions": b'{"code": 200, "message": "success", "data": {"id": "',
    "envelope": b'{"code": 0, "message": "Success", "data": {"task_id": "task_',
}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def classify(method: str, path: str) -> tuple[str, str | None]:
    """Endpoint name and task id of a request; "admin" for the tooling routes."""
    if path.startswith("/_emulator/"):
        media = _MEDIA_RE.fullmatch(path)
        if media:
            return ("video" if media[2] == "mp4" else "last_frame"), media[1]
        return "admin", None
    if path.rstrip("/") == TASKS_PATH:
        return {"POST": "create", "GET": "list"}.get(method, "other"), None
    match = _TASK_RE.fullmatch(path) or _PREDICTION_RE.fullmatch(path)
    if match:
        return {"GET": "get", "DELETE": "delete"}.get(method, "other"), match[1]
    return "other", None


class _Abort(Exception):
    """Stops the inner app once a truncated body has been cut."""


async def _discard(message: Message) -> None:
    """The reply of a request whose connection will be dropped goes nowhere."""


def _prompt_of(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    texts = [item.get("text", "") for item in data.get("content") or [] if isinstance(item, dict)]
    prompt = data.get("prompt")
    return " ".join([*(t for t in texts if isinstance(t, str)), prompt if isinstance(prompt, str) else ""])


def _rewrite(data: Any, rule: FaultRule) -> Any:
    """unknown_status: every ``status`` becomes ``rule.status_word``; missing_id: ids disappear."""
    if isinstance(data, list):
        return [_rewrite(item, rule) for item in data]
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        if rule.action == "missing_id" and key in ("id", "task_id"):
            continue
        if rule.action == "unknown_status" and key == "status" and isinstance(value, str):
            out[key] = rule.status_word
        else:
            out[key] = _rewrite(value, rule)
    return out


class EmulatorMiddleware:
    """Observes every non-admin request and applies the first matching fault rule."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint, task_id = classify(scope["method"], scope["path"])
        if endpoint == "admin":
            await self.app(scope, receive, send)
            return
        record = self._new_record(scope, endpoint, task_id)
        scope["gptproto"] = {"request_id": record.request_id}
        started = time.perf_counter()
        prompt: str | None = None
        if endpoint == "create":
            body = await _read_body(receive)
            receive = _replay(body, receive)
            prompt = _prompt_of(body)
        elif task_id and task_id in self.state.store.tasks:
            prompt = self.state.store.tasks[task_id].request["prompt"]
        rule = self.state.faults.pick(endpoint, prompt, task_id) if self.state.faults.rules else None

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            elif message["type"] == "http.response.body":
                record.response_bytes += len(message.get("body", b""))
            await send(message)

        recorded = False

        def finish() -> None:
            # Called before a connection is dropped too, so a client that saw the drop and then
            # asks for stats always finds this request counted.
            nonlocal recorded
            if not recorded:
                recorded = True
                record.duration_ms = round((time.perf_counter() - started) * 1000, 3)
                record.task_id = record.task_id or scope["gptproto"].get("task_id")
                self.state.stats.record(record)
                self.state.log.add(record)

        scope["gptproto"]["finish"] = finish
        try:
            if rule is None:
                await self.app(scope, receive, observed_send)
            else:
                record.fault, record.fault_id = rule.action, rule.id
                await self._apply(rule, scope, receive, observed_send, record)
        finally:
            finish()

    def _new_record(self, scope: Scope, endpoint: str, task_id: str | None) -> RequestRecord:
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").strip()
        client = scope.get("client")
        return RequestRecord(
            ts=round(time.time(), 6),
            method=scope["method"],
            path=scope["path"],
            endpoint=endpoint,
            query=redact_query(scope.get("query_string", b"").decode("latin-1")),
            task_id=task_id,
            auth_present=bool(auth),
            auth_scheme=("bearer" if auth.lower().startswith(b"bearer ") else "bare") if auth else None,
            client=f"{client[0]}:{client[1]}" if client else None,
            request_id=new_request_id(),
        )

    async def _apply(
        self, rule: FaultRule, scope: Scope, receive: Receive, send: Send, record: RequestRecord
    ) -> None:
        if rule.latency_seconds:
            await asyncio.sleep(rule.latency_seconds)
        action = rule.action
        if action == "latency":
            await self.app(scope, receive, send)
        elif action == "drop_before":
            record.outcome = "dropped"
            await _drop_connection(scope, receive)
        elif action == "drop_after":
            await self.app(scope, receive, _discard)
            record.outcome = "dropped"
            await _drop_connection(scope, receive)
        elif action in ("status", "rate_limit", "html", "malformed_json"):
            if rule.process:
                await self.app(scope, receive, _discard)
            await self._send_canned(rule, send, record.request_id or new_request_id())
        elif action == "wrong_content_type":
            await self.app(scope, receive, _with_content_type(send, rule.content_type))
        elif action in ("unknown_status", "missing_id") and record.endpoint not in MEDIA_ENDPOINTS:
            await self._rewrite_json(rule, scope, receive, send)
        elif action == "truncate":
            await self._truncate(rule, scope, receive, send, record)
        else:
            await self.app(scope, receive, send)

    async def _send_canned(self, rule: FaultRule, send: Send, request_id: str) -> None:
        status = rule.status or 500
        dialect = self.state.config.dialect
        if rule.action == "html":
            body, content_type = (
                _HTML_PAGE.format(status=status, phrase=_phrase(status)).encode(),
                "text/html",
            )
        elif rule.action == "malformed_json":
            body, content_type = _MALFORMED[dialect], "application/json"
        else:
            body, content_type = fault_error_body(
                rule.body_shape, status, dialect, request_id, rule.message, rule.code, rule.error_type
            )
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ]
        retry_after = rule.retry_after_header()
        if retry_after is not None:
            headers.append((b"retry-after", retry_after.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _rewrite_json(self, rule: FaultRule, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        with contextlib.suppress(ValueError):
            body = json.dumps(_rewrite(json.loads(body), rule)).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _truncate(
        self, rule: FaultRule, scope: Scope, receive: Receive, send: Send, record: RequestRecord
    ) -> None:
        """Send the headers and part of the body, then close the connection mid-body."""
        limit = rule.truncate_bytes
        sent = 0
        cut = False

        async def cutting_send(message: Message) -> None:
            nonlocal limit, sent, cut
            if message["type"] == "http.response.start":
                length = dict(message.get("headers", [])).get(b"content-length")
                total = int(length) if length else None
                if limit is None:
                    limit = total // 2 if total else 0
                if total is not None:
                    limit = min(limit, max(total - 1, 0))
                await send(message)
                return
            body = message.get("body", b"")
            room = (limit or 0) - sent
            if len(body) >= room or not message.get("more_body", False):
                if room > 0:
                    await send({"type": "http.response.body", "body": body[:room], "more_body": True})
                    sent += room
                cut = True
                raise _Abort
            sent += len(body)
            await send(message)

        try:
            await self.app(scope, receive, cutting_send)
        except Exception:
            if not cut:
                raise
        record.outcome = "truncated"
        await _drop_connection(scope, receive)


def _with_content_type(send: Send, content_type: str) -> Send:
    async def rewritten(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-type"]
            headers.append((b"content-type", content_type.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return rewritten


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the buffered body to the app once, then defers to the server."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _drop_connection(scope: Scope, receive: Receive) -> None:
    """Close the TCP connection without (the rest of) a reply, like a crashed proxy would."""
    transport = (scope.get("state") or {}).get(TRANSPORT_KEY)
    if transport is None:
        raise RuntimeError("dropping connections needs the emulator's own server (gptproto-emulator)")
    scope["gptproto"]["finish"]()
    transport.close()
    # Wait until the server has seen the disconnect, so it neither answers 500 nor logs an error.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(_until_disconnect(receive), timeout=2)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
