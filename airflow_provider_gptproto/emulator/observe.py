"""Counters and the structured request log.

The log records whether an Authorization header was present and its scheme, never its
value, so tests can assert that a client never sends its key to the video host and logs
can be shared without leaking keys.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode

ENDPOINTS = ("create", "get", "list", "delete", "video", "last_frame", "other")
MEDIA_ENDPOINTS = ("video", "last_frame")
_SECRET_PARAMS = ("key", "token", "secret", "password", "authorization")


@dataclass
class RequestRecord:
    """One request as the log and the stats see it."""

    ts: float
    method: str
    path: str
    endpoint: str
    query: str = ""
    task_id: str | None = None
    status: int | None = None
    outcome: str = "ok"  # ok | dropped | truncated
    duration_ms: float = 0.0
    auth_present: bool = False
    auth_scheme: str | None = None  # "bearer" | "bare" | None
    response_bytes: int = 0
    fault: str | None = None
    fault_id: str | None = None
    request_id: str | None = None
    client: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status_key(self) -> str:
        return "dropped" if self.outcome == "dropped" else str(self.status)


def redact_query(query: str) -> str:
    """Drop the value of any query parameter that looks like a credential."""
    pairs = parse_qsl(query, keep_blank_values=True)
    safe = [(k, "REDACTED" if any(s in k.lower() for s in _SECRET_PARAMS) else v) for k, v in pairs]
    return urlencode(safe)


class Stats:
    """Per-endpoint request and status counters, media bytes served and faults applied."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started_at = time.time()
        self.requests: Counter[str] = Counter()
        self.status_counts: dict[str, Counter[str]] = {}
        self.bytes_served = 0
        self.faults_applied: Counter[str] = Counter()

    def record(self, record: RequestRecord) -> None:
        self.requests[record.endpoint] += 1
        self.status_counts.setdefault(record.endpoint, Counter())[record.status_key] += 1
        if record.endpoint in MEDIA_ENDPOINTS:
            self.bytes_served += record.response_bytes
        if record.fault:
            self.faults_applied[record.fault] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": {name: self.requests.get(name, 0) for name in ENDPOINTS},
            "status_counts": {name: dict(self.status_counts.get(name, {})) for name in ENDPOINTS},
            "bytes_served": self.bytes_served,
            "faults_applied": dict(self.faults_applied),
            "uptime_seconds": round(time.time() - self.started_at, 3),
        }


class RequestLog:
    """The last ``limit`` records in memory, each also written as a JSON line to a stream."""

    def __init__(self, stream: TextIO | None = None, limit: int = 10000) -> None:
        self.records: deque[RequestRecord] = deque(maxlen=limit)
        self.stream = stream

    def add(self, record: RequestRecord) -> None:
        self.records.append(record)
        if self.stream is not None:
            try:
                self.stream.write(json.dumps({"event": "request", **as_dict(record)}) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                self.stream = None  # the log target went away; keep serving

    def entries(self, endpoint: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        chosen = [r for r in self.records if endpoint is None or r.endpoint == endpoint]
        if limit is not None:
            chosen = chosen[-limit:] if limit > 0 else []
        return [as_dict(record) for record in chosen]

    def clear(self) -> None:
        self.records.clear()


def as_dict(record: RequestRecord) -> dict[str, Any]:
    data = asdict(record)
    data.pop("extra")
    data.update(record.extra)
    return data


def open_log_stream(path: str | None, quiet: bool) -> TextIO | None:
    """--log-file, else stderr, else nothing with --quiet."""
    if path:
        return open(path, "a", encoding="utf-8", buffering=1)
    return None if quiet else sys.stderr
