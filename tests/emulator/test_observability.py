"""Stats, reset and the structured request log (which must never contain the API key)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

DONE_NOW = "[[queue:0]] [[run:0]]"


def test_stats_count_requests_statuses_and_tasks(api: Any, emu: Any) -> None:
    task_id = api.new_task(f"{DONE_NOW} counted", duration=2)
    api.create(prompt="")  # 400
    api.get(task_id)
    api.get("task_missing")  # 404
    api.list()
    requests.get(api.video_url(task_id), timeout=10)
    api.delete(task_id)
    api.create(headers={})  # 401
    stats = emu.stats()
    assert stats["requests"] == {
        "create": 3,
        "get": 3,
        "list": 1,
        "delete": 1,
        "video": 1,
        "last_frame": 0,
        "other": 0,
    }
    assert stats["status_counts"]["create"] == {"200": 1, "400": 1, "401": 1}
    assert stats["status_counts"]["get"] == {"200": 2, "404": 1}
    assert stats["tasks_created"] == 1 and stats["bytes_served"] > 1000 and stats["renders"] >= 0
    assert stats["tasks"] == {} and stats["faults_applied"] == {}
    emu.add_fault(endpoint="list", action="html", count=1)
    api.list()
    assert emu.stats()["faults_applied"] == {"html": 1}


def test_reset_clears_tasks_stats_log_and_rules(api: Any, emu: Any) -> None:
    api.new_task()
    emu.add_fault(endpoint="get", action="html")
    emu.configure(dialect="ark")
    emu.reset()
    stats = emu.stats()
    assert stats["tasks_created"] == 0 and sum(stats["requests"].values()) == 0 and stats["tasks"] == {}
    assert emu.tasks() == [] and emu.faults() == [] and emu.requests_log() == []
    assert emu.config()["dialect"] == "envelope"


def test_request_log_records_auth_presence_but_never_the_key(api: Any, emu: Any) -> None:
    api.new_task()
    api.create(headers={"Authorization": "emulator-test-key"})
    api.create(headers={"Authorization": "Bearer not-the-key"})
    api.create(headers={})
    entries = emu.requests_log(endpoint="create")
    assert [(e["auth_present"], e["auth_scheme"], e["status"]) for e in entries] == [
        (True, "bearer", 200),
        (True, "bare", 200),
        (True, "bearer", 401),
        (False, None, 401),
    ]
    entry = entries[0]
    assert entry["method"] == "POST" and entry["path"] == "/api/v3/contents/generations/tasks"
    assert entry["task_id"] and entry["request_id"] and entry["duration_ms"] >= 0 and entry["outcome"] == "ok"
    everything = json.dumps(emu.requests_log())
    assert "emulator-test-key" not in everything and "not-the-key" not in everything
    assert emu.requests_log(limit=1) == emu.requests_log()[-1:]


def test_log_file_gets_json_lines_without_keys(
    gptproto_emulator_factory: Any, make_api: Any, tmp_path: Path
) -> None:
    log_file = tmp_path / "requests.jsonl"
    emulator = gptproto_emulator_factory(api_key="sk-super-secret", log_file=str(log_file))
    api = make_api(emulator)
    api.new_task()
    api.session.get(
        api.base + "/api/v3/contents/generations/tasks?api_key=sk-super-secret", headers=api.headers
    )
    api.create(headers={"Authorization": "Bearer sk-wrong-secret"})
    emulator.stop()
    text = log_file.read_text()
    assert "sk-super-secret" not in text and "sk-wrong-secret" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(e["event"], e["endpoint"], e["status"]) for e in lines] == [
        ("request", "create", 200),
        ("request", "list", 200),
        ("request", "create", 401),
    ]
    assert lines[1]["query"] == "api_key=REDACTED"
    assert "sk-super-secret" not in emulator.log_path.read_text()


def test_stderr_log_by_default_and_quiet(gptproto_emulator_factory: Any, make_api: Any) -> None:
    loud = gptproto_emulator_factory()
    make_api(loud).new_task()
    quiet = gptproto_emulator_factory(quiet=True)
    make_api(quiet).new_task()
    loud.stop()
    quiet.stop()
    assert '"event": "request"' in loud.log_path.read_text()
    assert '"event": "request"' not in quiet.log_path.read_text()
