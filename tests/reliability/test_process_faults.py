"""Process faults with real Airflow: crashed workers and triggerers, user kills, a restarting API.

Each test drives the shared stack (tests/support/reliability_stack.py: api-server, scheduler,
dag-processor, triggerer, LocalExecutor) and marks its remote tasks with a unique prompt, so the
emulator's fault rules (``prompt_contains``) and its task list can single them out.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import datetime
from typing import Any

import pytest

from tests.support.reliability_stack import ReliabilityEnv, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(300)]


def _marker(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


def _ts(value: str | None) -> float:
    assert value, "timestamp missing"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _log(env: ReliabilityEnv, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
    return env.stack.client.task_log(dag_id, run_id, task_id, try_number)


@pytest.mark.parametrize("victim", ["task process", "task process and its supervisor"])
def test_worker_sigkilled_between_create_and_defer_reattaches(rel_env: ReliabilityEnv, victim: str) -> None:
    """SIGKILL the worker while the task's first status check after the create hangs.

    The emulator holds that check (a latency fault on the first ``get`` of this prompt), so the kill
    lands after the create and the state-store write and before the defer. Two crashes: the task
    process alone (e.g. the OOM killer; its supervisor reports the failure at once), or the task
    process and its supervisor, the LocalExecutor worker (the scheduler notices the missing heartbeat
    after ``task_instance_heartbeat_timeout``). Either way the retry must find the remote id in the
    task state store and reattach: one create in total.
    """
    env, dag_id = rel_env, "rel_worker_kill"
    marker = _marker("worker-kill")
    rule = env.emulator.add_fault(
        endpoint="get", action="latency", latency_seconds=50, prompt_contains=marker, count=1
    )
    run_id = env.trigger(dag_id, {"prompt": f"a kite over dunes {marker}"})

    # The task process is inside the slow get once the rule has been applied.
    wait_until(
        lambda: any(r["id"] == rule["id"] and r["applied"] == 1 for r in env.emulator.faults()),
        120,
        "the first status check after the create",
    )
    (remote,) = env.remote_tasks(marker)
    ti = env.ti(dag_id, run_id, "generate")
    assert ti["state"] == "running" and ti["try_number"] == 1, ti
    saved = env.state_store(dag_id, run_id, "generate", "gptproto_task")
    assert saved and saved["task_id"] == remote["id"], saved  # persisted before the wait
    (task_pid,) = wait_until(lambda: env.task_processes(ti["id"]), 30, "the task process")
    victims = [task_pid]
    if victim != "task process":
        supervisor = env.supervisor_of(task_pid)
        assert supervisor and env.command_line(supervisor).startswith("airflow worker -- LocalExecutor")
        victims.insert(0, supervisor)
    for pid in victims:
        os.kill(pid, signal.SIGKILL)

    outcome = env.stack.client.wait_for_run(dag_id, run_id, timeout=180, poll=0.5)
    generate = outcome.ti("generate")
    assert generate["state"] == "success" and generate["try_number"] == 2, generate
    first = _log(env, dag_id, run_id, "generate", 1)
    second = _log(env, dag_id, run_id, "generate", 2)
    assert f"Created GPTProto task {remote['id']}" in first, first
    assert "Pausing task as DEFERRED" not in first, first  # killed before it deferred
    assert f"Reattaching to GPTProto task {remote['id']}" in second, second
    assert "Created GPTProto task" not in second, second
    assert len(env.remote_tasks(marker)) == 1  # exactly one paid create
    result = env.stack.client.xcom(dag_id, run_id, "generate")
    assert result["task_id"] == remote["id"] and result["status"] == "succeeded", result
    if victim != "task process":  # nobody reported the death: the heartbeat check caught it
        assert "TIs without heartbeat" in env.stack.log_path("scheduler").read_text(errors="replace")
    print(f"\n{victim} SIGKILLed (pids {victims}); the retry reattached to {remote['id']}")


def _remote_gets(env: ReliabilityEnv, task_id: str) -> int:
    return sum(1 for r in env.emulator.requests_log(endpoint="get") if r.get("task_id") == task_id)


def test_mark_deferred_task_failed_cancels_the_remote_task(rel_env: ReliabilityEnv) -> None:
    """PATCH a deferred TI to failed: Airflow 3.3 calls the trigger's on_kill, which cancels remotely."""
    env, dag_id = rel_env, "rel_mark_failed"
    marker = _marker("mark-failed")
    run_id = env.trigger(dag_id, {"prompt": f"[[queue:600]] a glacier calving {marker}"})
    env.wait_ti_state(dag_id, run_id, "generate", {"deferred"})
    (remote,) = env.remote_tasks(marker)
    # The triggerer polls it (the worker's own check was one get): the trigger is live.
    wait_until(lambda: _remote_gets(env, remote["id"]) >= 2, 60, "the trigger's first poll")
    assert remote["status"] == "queued"

    env.stack.client.request(
        "PATCH", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/generate", json={"new_state": "failed"}
    )
    cancelled = wait_until(
        lambda: [t for t in env.remote_tasks(marker) if t["status"] == "cancelled"],
        60,
        f"remote task {remote['id']} cancelled",
    )
    assert [t["id"] for t in cancelled] == [remote["id"]]
    deletes = [r for r in env.emulator.requests_log(endpoint="delete") if r.get("task_id") == remote["id"]]
    assert [r["status"] for r in deletes] == [200], deletes
    outcome = env.stack.client.wait_for_run(dag_id, run_id, timeout=60, expect="failed")
    assert outcome.ti("generate")["state"] == "failed"
    log = _log(env, dag_id, run_id, "generate", 1)
    assert f"Cancelled GPTProto task {remote['id']} after the Airflow task was stopped" in log, log


def test_emulator_restart_with_state_file_is_ridden_out(rel_env: ReliabilityEnv) -> None:
    """SIGKILL the API mid-generation, start a new one on the same port and state file.

    A deferred task (polled by the triggerer) and a sync task (polled by the worker) both keep polling
    through the outage and finish; the video is downloaded from the new process; one create each.
    """
    env, dag_id = rel_env, "rel_emulator_restart"
    marker = _marker("emu-restart")
    old = env.restart.current
    run_id = env.trigger(
        dag_id, {"prompt": f"[[run:10]] a harbour at dusk {marker}", "output_dir": str(env.output_dir)}
    )
    env.wait_ti_state(dag_id, run_id, "generate_deferred", {"deferred"})
    env.wait_ti_state(dag_id, run_id, "generate_sync", {"running"})
    wait_until(
        lambda: len([t for t in env.remote_tasks(marker, old) if t["status"] == "running"]) == 2,
        60,
        "both remote tasks running",
    )
    created_before = old.stats()["tasks_created"]
    ids = {t["id"] for t in env.remote_tasks(marker, old)}

    env.restart.kill(signal.SIGKILL)
    # Both pollers hit the dead port before the new process is up.
    wait_until(
        lambda: (
            "transient, failure" in _log(env, dag_id, run_id, "generate_deferred", 1)
            and "transient, failure" in _log(env, dag_id, run_id, "generate_sync", 1)
        ),
        60,
        "polls failing against the dead emulator",
        interval=0.5,
    )
    new = env.restart.start()
    assert new.port == old.port
    # The outage is what this test studies, not the rest of the generation: end it now.
    assert {m["id"] for m in new.advance(*ids, to_end=True)} == ids

    outcome = env.stack.client.wait_for_run(dag_id, run_id, timeout=180, poll=0.5)
    assert {ti["task_id"]: ti["state"] for ti in outcome.task_instances} == {
        "generate_deferred": "success",
        "generate_sync": "success",
        "download_deferred": "success",
        "download_sync": "success",
    }
    restored = env.remote_tasks(marker, new)
    assert {t["id"] for t in restored} == ids and {t["status"] for t in restored} == {"succeeded"}
    assert created_before == 2  # this emulator serves only this test
    assert new.stats()["tasks_created"] == 0, "a task was created again after the restart"
    for mode in ("deferred", "sync"):
        for attempt in range(2, outcome.ti(f"generate_{mode}")["try_number"] + 1):
            assert "Reattaching" in _log(env, dag_id, run_id, f"generate_{mode}", attempt)
        saved = env.stack.client.xcom(dag_id, run_id, f"download_{mode}")
        assert saved["task_id"] in ids and saved["bytes"] > 0, saved
        assert os.path.getsize(saved["uri"].removeprefix("file://")) == saved["bytes"]


def test_triggerer_sigkilled_while_polling_keeps_the_original_deadline(rel_env: ReliabilityEnv) -> None:
    """SIGKILL the triggerer (its whole session) while it polls two tasks, then start a new one.

    The new triggerer takes over the same trigger rows (same kwargs, same absolute deadline): one task
    finishes; the other, whose remote task never leaves the queue, fails at the deadline computed when
    it was created, not ``timeout`` seconds after the takeover.
    """
    env, dag_id, timeout = rel_env, "rel_triggerer_kill", 45.0
    marker = _marker("trig-kill")
    run_id = env.trigger(
        dag_id,
        {
            "finish_prompt": f"[[run:20]] a comet {marker} finishes",
            "slow_prompt": f"[[queue:600]] a snail {marker} waits",
        },
    )
    tasks = ("finishes", "times_out")
    for task_id in tasks:
        env.wait_ti_state(dag_id, run_id, task_id, {"deferred"})
    by_word = {t["prompt"].split()[-1]: t for t in env.remote_tasks(marker)}
    remote = {"finishes": by_word["finishes"], "times_out": by_word["waits"]}
    # Kill well into the wait (a dozen polls each), so a deadline restarted at the takeover would
    # fall clearly later than the original one.
    for task_id in tasks:
        remote_id = remote[task_id]["id"]
        wait_until(lambda r=remote_id: _remote_gets(env, r) >= 12, 90, f"{task_id} polled")  # type: ignore[misc]

    before: dict[str, dict[str, Any]] = {}
    for task_id in tasks:
        trigger = env.ti(dag_id, run_id, task_id)["trigger"]
        kwargs = env.trigger_kwargs(trigger["id"])
        saved = env.state_store(dag_id, run_id, task_id, "gptproto_task")
        assert kwargs["gptproto_task_id"] == saved["task_id"] == remote[task_id]["id"]
        assert kwargs["deadline"] == pytest.approx(saved["deadline"])
        before[task_id] = {"trigger": trigger, "deadline": kwargs["deadline"]}
    stale = {None, *(b["trigger"]["triggerer_id"] for b in before.values())}
    slow_deadline = before["times_out"]["deadline"]
    slow_created = remote["times_out"]["created_at"]
    assert slow_deadline == pytest.approx(slow_created + timeout, abs=5)

    env.stack.kill("triggerer", signal.SIGKILL)
    killed_at = time.time()
    try:
        env.stack.start("triggerer")

        def taken_over() -> bool:
            for task_id in tasks:
                ti = env.ti(dag_id, run_id, task_id)
                if ti["state"] == "deferred" and (ti["trigger"] or {}).get("triggerer_id") in stale:
                    return False
            return True

        wait_until(taken_over, 120, "the new triggerer to take over both triggers", interval=0.5)
        taken_at = time.time()
        for task_id in tasks:
            ti = env.ti(dag_id, run_id, task_id)
            if ti["state"] == "deferred":  # the same row, re-run from the same kwargs
                assert ti["trigger"]["id"] == before[task_id]["trigger"]["id"]
                assert env.trigger_kwargs(ti["trigger"]["id"])["deadline"] == before[task_id]["deadline"]
        outcome = env.stack.client.wait_for_run(dag_id, run_id, timeout=180, poll=0.5, expect="failed")
    finally:
        if not env.stack.is_running("triggerer"):  # later tests need one
            env.stack.start("triggerer")

    assert outcome.ti("finishes")["state"] == "success", outcome.ti("finishes")
    assert env.stack.client.xcom(dag_id, run_id, "finishes")["status"] == "succeeded"
    slow = outcome.ti("times_out")
    assert slow["state"] == "failed", slow
    assert "did not finish by its deadline" in _log(env, dag_id, run_id, "times_out", slow["try_number"])
    ended = _ts(slow["end_date"])
    # Failed at the original deadline (plus the worker's resume), long before a restarted clock's.
    assert slow_deadline - 1 <= ended <= slow_deadline + 15, ended - slow_deadline
    assert ended < taken_at + timeout - 5, (ended, taken_at)
    # The queued remote task was cancelled at the timeout, and nothing was created twice.
    statuses = {t["id"]: t["status"] for t in env.remote_tasks(marker)}
    assert statuses == {remote["finishes"]["id"]: "succeeded", remote["times_out"]["id"]: "cancelled"}
    print(
        f"\ntriggerer SIGKILLed {killed_at - slow_created:.1f} s after the create, taken over "
        f"{taken_at - killed_at:.1f} s later; deadline {slow_deadline - slow_created:.1f} s after the "
        f"create; the task failed {ended - slow_deadline:+.1f} s from it"
    )
