"""The batch operator through DAG.test() against the emulator over loopback, with injected faults.

What must hold whatever the faults: exactly one create per item (the emulator's own task list
is the witness), a manifest row per item, and no partial file in the destination.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dagrun import run_dag

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture
def batch_emulator(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Short generations, and a 2 s request timeout so a lost create settles in 4 s."""
    emulator.configure(queue_seconds=0.2, run_seconds=0.6)
    conn = {
        "conn_type": "gptproto",
        "host": emulator.url,
        "password": emulator.api_key,
        "extra": {"timeout": 2},
    }
    monkeypatch.setenv("AIRFLOW_CONN_GPTPROTO_DEFAULT", json.dumps(conn))
    return emulator


def _creates_per_prompt(emulator: Any, prefix: str) -> Counter[str]:
    return Counter(t["prompt"] for t in emulator.tasks() if str(t.get("prompt", "")).startswith(prefix))


def _check_destination(out: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert not [p.name for p in out.rglob("*.part")], "partial files left behind"
    for row in rows:
        if row["status"] == "succeeded":
            data = Path(row["uri"]).read_bytes()
            assert len(data) == row["bytes"] and hashlib.sha256(data).hexdigest() == row["sha256"]
            assert row["usage"] and row["task_id"]
        else:
            assert row["uri"] is None and not (out / f"{row['key']}.mp4").exists()
    return rows


def test_faults_never_cost_a_second_create(batch_emulator: Any, tmp_path: Path) -> None:
    emu = batch_emulator
    prompts = [f"fault batch {i}" for i in range(24)]
    emu.add_fault(endpoint="create", action="rate_limit", count=3, retry_after=0.1)
    emu.add_fault(endpoint="create", action="status", status=503, count=1)
    emu.add_fault(endpoint="create", action="drop_before", prompt_contains="fault batch 5", count=1)
    emu.add_fault(endpoint="list", action="status", status=500, count=2)
    emu.add_fault(endpoint="list", action="drop_after", count=2)
    emu.add_fault(endpoint="video", action="truncate", truncate_bytes=1000, count=1)

    out = tmp_path / "out"
    result = run_dag("it_batch_defer", prompts=prompts, destination=str(out))

    assert result.state == "success"
    assert _creates_per_prompt(emu, "fault batch") == Counter(prompts)  # exactly one each
    applied = emu.stats()["faults_applied"]
    assert sum(applied.values()) >= 9, applied
    rows = _check_destination(out)
    assert len(rows) == 24 and [r["index"] for r in rows] == list(range(24))
    failed = [r for r in rows if r["status"] != "succeeded"]
    assert [r["error_kind"] for r in failed] == ["download"]  # the truncated video, nothing else
    summary = result.xcom("batch")
    assert summary["succeeded"] == 23 and summary["failed"] == 1
    assert summary["manifest"] == str(out / "manifest.jsonl")


def test_lost_create_reply_is_reconciled_not_paid_twice(batch_emulator: Any, tmp_path: Path) -> None:
    emu = batch_emulator
    prompts = [f"lost reply {i}" for i in range(6)]
    emu.add_fault(endpoint="create", action="drop_after", prompt_contains="lost reply 2", count=1)

    result = run_dag("it_batch_sync", prompts=prompts, destination=str(tmp_path / "out"))

    assert result.state == "success"  # 1 failure of 6 is within max_failed_items=0.5
    assert _creates_per_prompt(emu, "lost reply") == Counter(prompts)
    rows = _check_destination(tmp_path / "out")
    assert rows[2]["error_kind"] == "ambiguous" and rows[2]["task_id"] is None
    assert [r["status"] for r in rows].count("succeeded") == 5


def test_partial_failures_then_rerun_of_only_the_failed_items(batch_emulator: Any, tmp_path: Path) -> None:
    emu = batch_emulator
    prompts = ["part ok 0", "part bad [[fail:policy]]", "part ok 2", "part late [[expire]]", "part ok 4"]
    result = run_dag("it_batch_sync", prompts=prompts, destination=str(tmp_path / "first"))

    assert result.state == "success"
    rows = _check_destination(tmp_path / "first")
    assert [r["status"] for r in rows] == ["succeeded", "failed", "succeeded", "expired", "succeeded"]
    assert rows[1]["error_kind"] == "policy"
    assert result.tries("batch") == 1

    rerun = run_dag(
        "it_batch_rerun",
        manifest=str(tmp_path / "first" / "manifest.jsonl"),
        destination=str(tmp_path / "rerun"),
    )
    assert rerun.state == "failed"  # the expiry fails again, over max_failed_items=0
    # The content-policy rejection is not paid for again (as a resume inside a batch would not).
    assert _creates_per_prompt(emu, "part ") == Counter({**Counter(prompts), prompts[3]: 2})
    rerun_rows = _check_destination(tmp_path / "rerun")
    assert [(r["key"], r["index"]) for r in rerun_rows] == [("00003", 3)]
    assert _check_destination(tmp_path / "first") == rows  # written beside: the first record is intact


def test_rerun_into_the_same_destination_keeps_the_first_runs_record(
    batch_emulator: Any, tmp_path: Path
) -> None:
    emu = batch_emulator
    prompts = [f"same ok {i}" for i in range(4)] + ["same late [[expire]]", "same bad [[fail:policy]]"]
    first = run_dag("it_batch_sync", prompts=prompts, destination=str(tmp_path / "out"))
    assert first.state == "success"
    rows = _check_destination(tmp_path / "out")

    rerun = run_dag(
        "it_batch_rerun", manifest=str(tmp_path / "out" / "manifest.jsonl"), destination=str(tmp_path / "out")
    )

    assert rerun.state == "failed"  # the expiry again: over its failure budget
    # The earlier manifest is this task's input (an Airflow retry reads it again), so it stays as it
    # was; the rerun's rows are on record beside it, at their original positions.
    assert _check_destination(tmp_path / "out") == rows
    side = [json.loads(line) for line in (tmp_path / "out" / "manifest.retry.jsonl").read_text().splitlines()]
    assert [(r["key"], r["index"], r["line"], r["status"]) for r in side] == [
        (rows[4]["key"], 4, rows[4]["line"], "expired")
    ]
    assert side[0]["task_id"] != rows[4]["task_id"]  # the retried row is the new attempt
    assert _creates_per_prompt(emu, "same ") == Counter({**Counter(prompts), prompts[4]: 2})


@pytest.mark.parametrize("state, cancelled", [("failed", True), ("deferred", False)])
def test_trigger_on_kill_cancels_every_in_flight_task_only_when_a_user_stopped_it(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, state: str, cancelled: bool
) -> None:
    import asyncio
    import time

    from airflow_provider_gptproto.emulator.harness import wait_for
    from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
    from airflow_provider_gptproto.triggers.batch import GPTProtoBatchTrigger
    from tests.support.supervisor_comms import FakeComms, supervisor_comms, task_instance

    emulator.configure(queue_seconds=60)
    hook = GPTProtoHook()
    ids = [hook.create_task({"prompt": f"kill batch {i}"}).task_id for i in range(4)]

    async def main() -> None:
        trigger = GPTProtoBatchTrigger({i: None for i in ids}, poll_interval=0.1, deadline=time.time() + 60)
        trigger.task_instance = task_instance()
        run = asyncio.ensure_future(trigger.run().__anext__())
        # The wait is under way (the emulator answered a poll), then it is stopped.
        await asyncio.to_thread(wait_for, lambda: emulator.requests_log("list"), 30, what="the first poll")
        run.cancel()
        await trigger.on_kill()

    with supervisor_comms(monkeypatch, FakeComms(state=state)):
        asyncio.run(main())

    statuses = {t["id"]: t["status"] for t in emulator.tasks()}
    assert [statuses[i] for i in ids] == (["cancelled"] * 4 if cancelled else ["queued"] * 4)


def test_the_manifest_names_the_seed_of_every_video(batch_emulator: Any, tmp_path: Path) -> None:
    """GPTProto documents no list call and its envelope reports no seed: each row names the one sent."""
    batch_emulator.add_fault(endpoint="list", action="status", status=404)  # statuses read one by one
    prompts = ["seeded 0", {"prompt": "seeded 1", "seed": 1234}, "seeded 2"]
    result = run_dag("it_batch_sync", prompts=prompts, destination=str(tmp_path / "out"))

    assert result.state == "success"
    seeds = {t["id"]: t["seed"] for t in batch_emulator.tasks()}
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["succeeded"] * 3
    assert [r["seed"] for r in rows] == [seeds[r["task_id"]] for r in rows]
    assert rows[1]["seed"] == 1234 and None not in [r["seed"] for r in rows]


def test_takes_give_each_prompt_three_videos_with_distinct_seeds(batch_emulator: Any, tmp_path: Path) -> None:
    emu = batch_emulator
    prompts = ["takes lake", "takes hill"]
    result = run_dag("it_batch_takes", prompts=prompts, destination=str(tmp_path / "out"))

    assert result.state == "success", result.tis
    assert _creates_per_prompt(emu, "takes ") == Counter({p: 3 for p in prompts})
    rows = _check_destination(tmp_path / "out")
    sent = {t["id"]: t["seed"] for t in emu.tasks()}  # the seed each video was made with
    for index, prompt in enumerate(prompts):
        takes = [r for r in rows if r["prompt_index"] == index]
        assert [(r["take"], r["takes"], r["prompt"], r["status"]) for r in takes] == [
            (k, 3, prompt, "succeeded") for k in (1, 2, 3)
        ]
        assert [r["index"] for r in takes] == [index * 3 + k for k in range(3)]
        assert [r["seed"] for r in takes] == [sent[r["task_id"]] for r in takes]
        assert len({r["seed"] for r in takes}) == 3 and None not in {r["seed"] for r in takes}
    assert result.xcom("batch")["total"] == 6
