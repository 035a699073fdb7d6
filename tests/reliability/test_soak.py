"""Soak: 200 mapped videos through real Airflow while 10 % of API calls fail transiently.

``rel_soak`` maps a deferrable generate and a download over 200 prompts in the ``gptproto`` pool.
The emulator fails about one call in ten on each API endpoint, only with faults that are safe for
the kind of call: a create is refused only in ways that prove it was not processed (429, 503), while
status checks and lists also get 500s, HTML error pages, dropped connections (before or after the
server acted) and JSON cut in half. A connection dropped during a create is *not* transient from the
client's side, whether or not the server had acted (``drop_before`` and ``drop_after`` look the same
to it): a paid task may exist, so the provider fails the try and reconciles through the list endpoint
(fault-matrix rows). With 200 same-model creates in flight that reconciliation cannot tell its own
task from its siblings' and fails the task on purpose, so those faults are not part of the soak.

Every video must arrive, with exactly one create per video.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from dev.airflow_stack import STATE_MISMATCH
from tests.support.reliability_stack import POOL_SLOTS, ReliabilityEnv

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(600)]

VIDEOS = int(os.environ.get("GPTPROTO_SOAK_VIDEOS", "200"))
FAULT_RATE = 0.10
CREATE_FAULTS: list[dict[str, Any]] = [
    {"action": "rate_limit", "retry_after": None},
    {"action": "status", "status": 503},
]
READ_FAULTS: list[dict[str, Any]] = [
    {"action": "status", "status": 500},
    {"action": "html", "status": 502},
    {"action": "drop_before"},
    {"action": "drop_after"},
    {"action": "malformed_json"},
]
RUN_TIMEOUT = 540.0


def _rules(endpoint: str, faults: list[dict[str, Any]], prompt_contains: str | None) -> list[dict[str, Any]]:
    """Rules that together fail ``FAULT_RATE`` of the endpoint's calls, split evenly by fault kind.

    The emulator applies the first matching rule that wins its roll, so rule i must fire with
    probability share / (1 - (i - 1) * share) for each kind to get ``share`` of all calls.
    """
    share = FAULT_RATE / len(faults)
    rules = []
    for i, fault in enumerate(faults):
        rule = {"endpoint": endpoint, "probability": share / (1 - i * share), **fault}
        if prompt_contains:
            rule["prompt_contains"] = prompt_contains
        rules.append(rule)
    return rules


def test_soak_200_mapped_videos_with_transient_faults(rel_env: ReliabilityEnv) -> None:
    env, dag_id = rel_env, "rel_soak"
    emu, client = env.emulator, env.stack.client
    prefix = f"soak-{uuid.uuid4().hex[:8]}"
    output_dir = env.output_dir / prefix
    rules = [
        *_rules("create", CREATE_FAULTS, prefix),
        *_rules("get", READ_FAULTS, prefix),
        *_rules("list", READ_FAULTS, None),  # a list names no prompt
    ]
    for rule in rules:
        emu.add_fault(**rule)
    before = emu.stats()
    started = time.monotonic()
    try:
        run_id = env.trigger(dag_id, {"count": VIDEOS, "prefix": prefix, "output_dir": str(output_dir)})
        outcome = client.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT, poll=2.0)
    finally:
        seconds = time.monotonic() - started
        applied = {r["id"]: r["applied"] for r in emu.faults()}
        emu.clear_faults()
    after = emu.stats()

    generates, downloads = outcome.tis("generate"), outcome.tis("download")
    assert len(generates) == len(downloads) == VIDEOS
    assert {ti["state"] for ti in outcome.task_instances} == {"success"}

    # Exactly one paid create per video, and every remote task succeeded.
    remote = env.remote_tasks(prefix)
    assert after["tasks_created"] - before["tasks_created"] == VIDEOS
    assert len(remote) == VIDEOS and {t["status"] for t in remote} == {"succeeded"}
    assert len({t["prompt"] for t in remote}) == VIDEOS

    # Every video landed once, complete, and nothing else (no temporary or partial files) but
    # its poster frame (utils/poster.py), when one could be made.
    files = sorted(p for p in output_dir.iterdir() if p.suffix != ".jpg")
    posters = {p.stem for p in output_dir.iterdir() if p.suffix == ".jpg"}
    assert posters <= {p.stem for p in files}
    assert len(files) == VIDEOS and all(p.suffix == ".mp4" for p in files), [p.name for p in files][:10]
    assert {p.stem for p in files} == {t["id"] for t in remote}
    for path in files:
        with path.open("rb") as handle:
            assert handle.read(8)[4:8] == b"ftyp", path
    events = client.asset_events("gptproto_videos", source_dag_id=dag_id, source_run_id=run_id)
    assert len(events) == VIDEOS
    for event in events:
        uri = Path(event["extra"]["uri"].removeprefix("file://"))
        assert uri.parent == output_dir and uri.stat().st_size == event["extra"]["bytes"], event

    # The faults really happened, on every endpoint the soak uses.
    injected = sum(applied.values())
    calls = sum(after["requests"][e] - before["requests"][e] for e in ("create", "get"))
    assert injected >= 0.05 * calls, (injected, calls)
    create_faults = sum(after["status_counts"]["create"].get(s, 0) for s in ("429", "503")) - sum(
        before["status_counts"]["create"].get(s, 0) for s in ("429", "503")
    )
    assert create_faults >= 5, after["status_counts"]["create"]

    # A retry is fine only if it reattached (creates are counted above) or came from the core race.
    retried = [ti for ti in outcome.task_instances if ti["try_number"] > 1]
    scheduler_log = env.stack.log_path("scheduler").read_text(errors="replace")
    for ti in retried:
        if ti["task_id"] == "generate":
            log = client.task_log(dag_id, run_id, "generate", ti["try_number"], ti["map_index"])
            assert "Reattaching" in log or STATE_MISMATCH in scheduler_log, log[-3000:]
    print(
        f"\nsoak: {VIDEOS} videos in {seconds:.0f} s (pool {POOL_SLOTS}); {calls} create/get calls, "
        f"{injected} faults injected ({create_faults} on creates); {len(retried)} TIs needed a retry"
    )
