"""The fault matrix: each injected fault -> the documented outcome, the creates paid, no partial file.

Every row runs the ``rel_pipeline`` DAG (generate with one retry, then download with one retry)
through ``DAG.test()`` against the emulator, with the row's faults injected over loopback. The
failure table of docs/failure-handling.md is this table in prose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dagrun import run_dag

pytestmark = pytest.mark.usefixtures("airflow_db")


@dataclass(frozen=True)
class Row:
    name: str
    faults: list[dict[str, Any]]
    outcome: str  # the DAG run's final state
    creates: int  # creates the emulator saw
    says: str | None = None  # what the task log must say (the cause, named)
    prompt: str = "a fault-tolerant lighthouse"
    dag: str = "rel_pipeline"
    conn_extra: dict[str, Any] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)


ROWS = [
    Row(
        "429 with Retry-After",
        [dict(endpoint="create", action="rate_limit", retry_after=0.3, count=2)],
        "success",
        1,
        tries={"generate": 1},
    ),
    Row(
        "429 without Retry-After",
        [dict(endpoint="get", action="rate_limit", retry_after=None, count=3)],
        "success",
        1,
        tries={"generate": 1},
    ),
    Row(
        "burst of 500/502/503 on status checks",
        [dict(endpoint="get", action="status", status=s, count=1) for s in (500, 502, 503)],
        "success",
        1,
        tries={"generate": 1},
    ),
    Row(
        "503 on create (rejected before processing)",
        [dict(endpoint="create", action="status", status=503, count=2)],
        "success",
        1,
        tries={"generate": 1},
    ),
    Row(
        "500 on create, not processed: try fails, retry finds nothing and creates",
        [dict(endpoint="create", action="status", status=500, count=1)],
        "success",
        1,
        says="may have been created",
        tries={"generate": 2},
    ),
    Row(
        "connection reset before the create is processed",
        [dict(endpoint="create", action="drop_before", count=1)],
        "success",
        1,
        says="may have been created",
        tries={"generate": 2},
    ),
    Row(
        "create processed but the reply lost: fails clearly, never a second task",
        [dict(endpoint="create", action="drop_after", count=1)],
        "failed",
        1,
        says="a task may have been created",
        tries={"generate": 2},
    ),
    Row(
        "read timeout on create (processed late): fails clearly, never a second task",
        [dict(endpoint="create", action="latency", latency_seconds=2.0, count=1)],
        "failed",
        1,
        says="read timeout",
        conn_extra={"timeout": 1},
        tries={"generate": 2},
    ),
    Row(
        "read timeout on status checks",
        [dict(endpoint="get", action="latency", latency_seconds=2.0, count=2)],
        "success",
        1,
        conn_extra={"timeout": 1},
        tries={"generate": 1},
    ),
    Row(
        "malformed JSON on status checks",
        [dict(endpoint="get", action="malformed_json", count=2)],
        "success",
        1,
        tries={"generate": 1},
    ),
    Row(
        "malformed JSON create reply (processed)",
        [dict(endpoint="create", action="malformed_json", process=True, count=1)],
        "failed",
        1,
        says="is not JSON",
        tries={"generate": 2},
    ),
    Row(
        "HTML error page on status checks",
        [dict(endpoint="get", action="html", status=502, count=2)],
        "success",
        1,
        tries={"generate": 1},
    ),
    Row(
        "HTML error page on create (not processed)",
        [dict(endpoint="create", action="html", status=502, count=1)],
        "success",
        1,
        says="HTML",
        tries={"generate": 2},
    ),
    Row(
        "unknown status word, transient",
        [dict(endpoint="get", action="unknown_status", count=2)],
        "success",
        1,
        tries={"generate": 1},
    ),
    # Waited out like any garbled reply (a new status word may be a new in-between state) until the
    # deadline; then it is a timeout: each try cancels its task, naming the word, and the retry
    # submits anew (the timeout row of docs/failure-handling.md's table).
    Row(
        "unknown status word, persistent",
        [dict(endpoint="get", action="unknown_status")],
        "failed",
        2,
        says="the last check failed: Unknown GPTProto task status 'mystery_state'",
        dag="rel_pipeline_short_deadline",
        tries={"generate": 2},
    ),
    Row(
        "create reply without an id (processed)",
        [dict(endpoint="create", action="missing_id", count=1)],
        "failed",
        1,
        says="no task id",
        tries={"generate": 2},
    ),
    Row(
        "task failed by content policy: not retried",
        [],
        "failed",
        1,
        says="content policy",
        prompt="forbidden [[fail:policy]]",
        tries={"generate": 1},
    ),
    Row(
        "task expired: retried with a new task",
        [],
        "failed",
        2,
        says="expired (",
        prompt="slow [[expire]]",
        tries={"generate": 2},
    ),
    Row(
        "video URL expired: a fresh URL is fetched",
        [dict(endpoint="video", action="status", status=403, count=1)],
        "success",
        1,
        tries={"download": 1},
    ),
    Row(
        "video truncated mid-stream (every try)",
        [dict(endpoint="video", action="truncate", truncate_bytes=20_000)],
        "failed",
        1,
        says="truncated",
        tries={"download": 2},
    ),
    Row(
        "video truncated once: the retry lands it",
        # count=2: the generate step's size probe (HEAD) takes the first, the first download the second.
        [dict(endpoint="video", action="truncate", truncate_bytes=20_000, count=2)],
        "success",
        1,
        says="truncated",
        tries={"download": 2},
    ),
    Row(
        "wrong content type",
        [dict(endpoint="video", action="wrong_content_type", content_type="text/html")],
        "failed",
        1,
        says="Content-Type 'text/html'",
        tries={"download": 2},
    ),
    Row(
        "video over max_bytes",
        [],
        "failed",
        1,
        says="max_bytes=50000",
        dag="rel_pipeline_capped",
        tries={"download": 2},
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_fault_matrix(row: Row, emulator: Any, tmp_path: Path, monkeypatch: Any) -> None:
    # A short request timeout keeps the retry's wait for a lost create to settle (timeout + 2 s) short.
    extra = {"timeout": 3, **row.conn_extra}
    conn = {"conn_type": "gptproto", "host": emulator.url, "password": emulator.api_key, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_GPTPROTO_DEFAULT", json.dumps(conn))
    for fault in row.faults:
        emulator.add_fault(**fault)
    dest = tmp_path / "videos"

    failure_log = tmp_path / "failures.log"
    failure_log.touch()

    result = run_dag(row.dag, prompt=row.prompt, dest=f"{dest}/", failure_log=str(failure_log))
    output = failure_log.read_text()

    assert result.state == row.outcome, output
    assert emulator.stats()["tasks_created"] == row.creates
    for task_id, tries in row.tries.items():
        assert result.tries(task_id) == tries, f"{task_id} tries"
    if row.says:
        assert row.says in output  # the cause, named in the exception of a failed try
    else:
        assert output == ""
    files = sorted(p.name for p in dest.iterdir()) if dest.exists() else []
    if row.outcome == "success":
        saved = result.xcom("download")
        # the whole file and nothing else, but its poster frame when one could be made
        assert files in ([f"{saved['task_id']}.mp4"], [f"{saved['task_id']}.jpg", f"{saved['task_id']}.mp4"])
        assert (dest / f"{saved['task_id']}.mp4").stat().st_size == saved["bytes"]
    else:
        assert files == []  # never a partial file, never a leftover temporary one
