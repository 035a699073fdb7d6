"""Webhooks to ``callback_url``: one POST of the task object per status change, terminal ones retried."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_gptproto.emulator.harness import wait_for


class Receiver:
    """A loopback webhook receiver that can refuse the first N deliveries."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.refuse = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.bodies.append(body)
                refused = receiver.refuse > 0
                receiver.refuse -= 1
                self.send_response(500 if refused else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def statuses(self, task_id: str) -> list[str]:
        return [body["status"] for body in self.bodies if body["id"] == task_id]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_every_status_change_is_posted_once_in_order(api: Any, emu: Any, receiver: Receiver) -> None:
    task_id = api.new_task("[[queue:0.2]] [[run:0.2]] hooked", callback_url=receiver.url, duration=2)
    wait_for(lambda: len(receiver.statuses(task_id)) == 3, timeout=10)
    assert receiver.statuses(task_id) == ["queued", "running", "succeeded"]
    final = receiver.bodies[-1]
    assert final["id"] == task_id and final["content"]["video_url"].startswith(emu.url)
    assert final["error"] is None and isinstance(final["created_at"], int)
    assert "content" not in receiver.bodies[0]
    failed = api.new_task("[[queue:0]] [[run:0]] [[fail:policy]] x", callback_url=receiver.url)
    wait_for(lambda: receiver.statuses(failed)[-1:] == ["failed"], timeout=10)
    assert receiver.bodies[-1]["error"]["code"] == "OutputVideoSensitiveContentDetected"
    assert emu.stats()["callbacks_sent"] == 6


def test_terminal_webhook_is_retried_three_times(api: Any, emu: Any, receiver: Receiver) -> None:
    emu.configure(callback_retry_seconds=0.05)
    task_id = api.new_task("[[queue:60]] waits", callback_url=receiver.url)
    wait_for(lambda: receiver.statuses(task_id) == ["queued"], timeout=10)
    receiver.refuse = 10
    done = api.new_task("[[queue:0]] [[run:0]] [[expire]]", callback_url=receiver.url)

    def deliveries() -> list[dict[str, Any]]:
        return [d for d in emu.callbacks() if d["task_id"] == done]

    wait_for(lambda: len(deliveries()) == 6, timeout=10)
    # Non-terminal statuses are sent once each; the terminal one 1 + 3 times.
    assert [(d["status"], d["attempt"]) for d in deliveries()] == [
        ("queued", 1),
        ("running", 1),
        ("expired", 1),
        ("expired", 2),
        ("expired", 3),
        ("expired", 4),
    ]
    assert receiver.statuses(done).count("expired") == 4
    assert not any(d["ok"] for d in deliveries()) and all(d["http_status"] == 500 for d in deliveries())
    assert emu.stats()["callbacks_failed"] == 6


def test_cancelled_task_gets_no_further_webhooks(api: Any, emu: Any, receiver: Receiver) -> None:
    task_id = api.new_task("[[queue:60]] cancel", callback_url=receiver.url)
    wait_for(lambda: receiver.statuses(task_id) == ["queued"], timeout=10)
    api.delete(task_id)
    unreachable = api.new_task("[[queue:0]] [[run:0]] y", callback_url="http://127.0.0.1:9/nothing-listens")
    wait_for(lambda: emu.stats()["callbacks_failed"] >= 1, timeout=10)
    assert receiver.statuses(task_id) == ["queued"]
    errors = [d for d in emu.callbacks() if d["task_id"] == unreachable]
    assert errors[0]["error"] and errors[0]["http_status"] is None
