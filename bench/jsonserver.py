"""A minimal HTTP/1.1 JSON server: the far end of the polling and client-overhead benchmarks.

The emulator spends about 5 ms of CPU per request (FastAPI, validation, logging), so at 600 polls/s
it, not the client, would be the bottleneck. This server answers the same bytes the emulator sends
for a running task (envelope dialect) from a hand-written asyncio protocol, in well under 0.1 ms.

Routes (everything else is 404):

* ``GET  /api/v3/contents/generations/tasks/<id>``: 200, a task that stays ``processing``;
* ``POST /api/v3/contents/generations/tasks``: 200, a create reply with a fresh task id;
* ``GET  /sensor/<anything>``: 404 (what HttpSensorTrigger keeps polling);
* ``GET  /_stats``: request counts per route, connections accepted, and this process's CPU seconds.

Task routes need an ``Authorization`` header carrying ``--api-key`` (401 otherwise). Keep-alive is
honoured; ``Connection: close`` closes after the reply. Run: ``python -m bench.jsonserver --port 0``;
the first stdout line is the base URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import time
from typing import Any

TASKS_PATH = b"/api/v3/contents/generations/tasks"
# The emulator's GET reply for a running task, byte for byte (only the id changes).
RUNNING_BODY = (
    b'{"code":0,"message":"Success","data":{"task_id":"%s","status":"processing",'
    b'"model":"seedance-1-0-pro","created_at":"2026-11-25T01:26:05Z"}}'
)
CREATE_BODY = b'{"code":0,"message":"Success","data":{"task_id":"%s","status":"pending"}}'
NOT_FOUND_BODY = b'{"error":{"message":"not found","type":"invalid_request_error","code":"not_found"}}'
UNAUTHORIZED_BODY = b'{"error":{"message":"invalid api key","code":"unauthorized"}}'
MAX_HEADER_BYTES = 64 * 1024

COUNTS: dict[str, int] = {"task_get": 0, "task_create": 0, "sensor": 0, "stats": 0, "other": 0}
CONNECTIONS = [0]


def _reply(status: bytes, body: bytes, close: bool) -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (status, len(body))
    return head + (b"Connection: close\r\n\r\n" if close else b"\r\n") + body


def _stats() -> bytes:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return json.dumps(
        {
            "requests": COUNTS,
            "connections": CONNECTIONS[0],
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "time": time.time(),
            "pid": os.getpid(),
        }
    ).encode()


class Handler(asyncio.Protocol):
    """One connection: parse pipelined requests from the buffer, answer each in order."""

    def __init__(self, auth: bytes) -> None:
        self.auth = auth
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.created = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        CONNECTIONS[0] += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    self.transport.close()
                return
            head = self.buffer[:end]
            lower = head.lower()
            length = 0
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = lower.find(b"\r\n", at + 2)
                length = int(lower[at + 17 : line_end if line_end >= 0 else None].strip() or 0)
            if len(self.buffer) < end + 4 + length:
                return  # body not complete yet
            self.buffer = self.buffer[end + 4 + length :]
            close = b"\r\nconnection: close" in lower
            self.transport.write(self.respond(head, lower, close))
            if close:
                self.transport.close()
                self.transport = None

    def respond(self, head: bytes, lower: bytes, close: bool) -> bytes:
        line_end = head.find(b"\r\n")
        method, _, rest = head[: line_end if line_end >= 0 else None].partition(b" ")
        path = rest.rpartition(b" ")[0].split(b"?", 1)[0]
        if path.startswith(TASKS_PATH):
            if self.auth not in lower:
                COUNTS["other"] += 1
                return _reply(b"401 Unauthorized", UNAUTHORIZED_BODY, close)
            task_id = path[len(TASKS_PATH) + 1 :]
            if method == b"GET" and task_id:
                COUNTS["task_get"] += 1
                return _reply(b"200 OK", RUNNING_BODY % task_id, close)
            if method == b"POST" and not task_id:
                COUNTS["task_create"] += 1
                self.created += 1
                new_id = b"task_%x_%x" % (id(self) & 0xFFFFFF, self.created)
                return _reply(b"200 OK", CREATE_BODY % new_id, close)
        elif path.startswith(b"/sensor/"):
            COUNTS["sensor"] += 1
            return _reply(b"404 Not Found", NOT_FOUND_BODY, close)
        elif path == b"/_stats":
            COUNTS["stats"] += 1
            return _reply(b"200 OK", _stats(), close)
        COUNTS["other"] += 1
        return _reply(b"404 Not Found", NOT_FOUND_BODY, close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int, api_key: str, parent_pid: int | None) -> None:
    loop = asyncio.get_running_loop()
    auth = b"authorization: bearer " + api_key.lower().encode()
    server = await loop.create_server(lambda: Handler(auth), host, port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()
    print(f"http://{bound[0]}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if parent_pid and not _alive(parent_pid):
            break
    server.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="bench-key-0123456789")
    parser.add_argument("--parent-pid", type=int, default=os.getppid(), help="exit when it exits")
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio loop")
    args = parser.parse_args(argv)
    runner: Any = asyncio.run
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    runner(serve(args.host, args.port, args.api_key, args.parent_pid))


if __name__ == "__main__":
    main()
