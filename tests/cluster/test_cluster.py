"""The provider on a distributed Airflow: CeleryExecutor on Postgres and Redis, two workers, two triggerers.

Everything is what a user runs (dev/cluster.py, also behind ``make cluster``); nothing in
Airflow is patched. Each test marks its remote tasks with a unique word and checks the emulator's
books: how many tasks were created, cancelled, polled, and which videos landed on disk.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest

from airflow_provider_gptproto.emulator.harness import wait_for
from airflow_provider_gptproto.utils.results import TASK_ID_XCOM_KEY
from dev.cluster import Cluster
from tests.cluster.conftest import HEALTH_CHECK_THRESHOLD

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.cluster]

T = TypeVar("T")
DAG_ID = "cluster_videos"
POLL_INTERVAL = 2.0  # the DAG's poll_interval


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    result: T = wait_for(predicate, timeout, interval, what, error=AssertionError)
    return result


# ------------------------------------------------------------------------------------------ helpers
def _start(cluster: Cluster, out: Path, count: int, prefix: str) -> str:
    cluster.client.unpause(DAG_ID)
    return cluster.client.trigger(DAG_ID, {"count": count, "prefix": prefix, "output_dir": str(out)})


def _generates(cluster: Cluster, run_id: str) -> list[dict[str, Any]]:
    tis = cluster.client.task_instances(DAG_ID, run_id)
    return sorted((t for t in tis if t["task_id"] == "generate"), key=lambda t: t["map_index"])


def _holders(cluster: Cluster, run_id: str) -> dict[int, str]:
    """Map index -> triggerer component, for the generates deferred on a triggerer right now."""
    found = {}
    for ti in _generates(cluster, run_id):
        if ti["state"] == "deferred":
            holder = cluster.triggerer_of(DAG_ID, run_id, "generate", ti["map_index"])
            if holder:
                found[ti["map_index"]] = holder
    return found


def _wait_deferred(cluster: Cluster, run_id: str, count: int, timeout: float = 240) -> dict[int, str]:
    """Wait until ``count`` generates are deferred and held by a triggerer."""

    def all_held() -> dict[int, str] | None:
        held = _holders(cluster, run_id)
        return held if len(held) == count else None

    try:
        return wait_until(all_held, timeout, f"{count} generates deferred on a triggerer", interval=1.0)
    except AssertionError as exc:  # say where the run stands: task table, task logs, component logs
        raise AssertionError(f"{exc}\n{cluster.client.explain_run(DAG_ID, run_id)}") from None


def _remote_id(cluster: Cluster, run_id: str, map_index: int) -> str:
    return str(cluster.client.xcom(DAG_ID, run_id, "generate", key=TASK_ID_XCOM_KEY, map_index=map_index))


def _remote(cluster: Cluster, marker: str) -> list[dict[str, Any]]:
    assert cluster.emulator is not None
    return [t for t in cluster.emulator.tasks() if marker in str(t.get("prompt") or "")]


def _polls_after(cluster: Cluster, remote_id: str, since: float) -> list[float]:
    assert cluster.emulator is not None
    gets = cluster.emulator.requests_log(endpoint="get")
    return sorted(r["ts"] for r in gets if r.get("task_id") == remote_id and r["ts"] > since)


def _assert_delivered_once(cluster: Cluster, run_id: str, marker: str, out: Path, count: int) -> None:
    """The run succeeded; ``count`` creates, none cancelled or deleted; ``count`` whole MP4s on disk."""
    assert cluster.emulator is not None
    outcome = cluster.client.wait_for_run(DAG_ID, run_id, timeout=600, poll=2.0)
    remote = _remote(cluster, marker)
    ids = {t["id"] for t in remote}
    assert len(remote) == count, f"{len(remote)} creates for {count} videos"
    assert [t["id"] for t in remote if t["status"] == "cancelled"] == []
    deletes = [r for r in cluster.emulator.requests_log(endpoint="delete") if r.get("task_id") in ids]
    assert deletes == []
    videos = sorted(out.glob("*.mp4"))
    assert len(videos) == count, [p.name for p in out.iterdir()]
    for video in videos:
        head = video.read_bytes()[:12]
        assert head[4:8] == b"ftyp", f"{video.name} is not a whole MP4"
    # Besides the videos only their poster frames (clip.mp4 -> clip.jpg, see utils/poster.py): no .part.
    others = sorted(p.name for p in out.iterdir() if not p.name.endswith(".mp4"))
    assert others in ([], sorted(v.with_suffix(".jpg").name for v in videos)), others
    assert len(outcome.tis("download")) == count


def _trigger_logs(cluster: Cluster, run_id: str, job_id: int) -> str:
    """Every trigger log a triggerer Job wrote for this run's generates."""
    base = cluster.stack.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=generate"
    return "\n".join(p.read_text(errors="replace") for p in sorted(base.glob(f"*/*.trigger.{job_id}.log")))


# -------------------------------------------------------------------------------------------- tests
def test_forty_mapped_videos_each_created_once_and_downloaded(cluster: Cluster, tmp_path: Path) -> None:
    """(a) 40 mapped deferrable generates, each followed by a download, over both workers and triggerers."""
    marker = f"fanout-{secrets.token_hex(4)}"
    run_id = _start(cluster, tmp_path, 40, f"a fanout {marker}")
    _assert_delivered_once(cluster, run_id, marker, tmp_path, 40)


def test_stalled_triggerer_never_cancels_the_waits_that_moved(cluster: Cluster, tmp_path: Path) -> None:
    """(b) SIGSTOP the triggerer holding three waits past the threshold, then SIGCONT it.

    Airflow moves the waits to the other triggerer; the woken one calls ``on_kill`` on each
    (apache/airflow#73454). Nothing may be cancelled: every video is created and delivered once.
    """
    a, b = cluster.triggerers[:2]
    marker = f"stall-{secrets.token_hex(4)}"
    # As in the report: all three waits on one triggerer. B pauses while they defer, then recovers.
    cluster.stack.signal_session(b, signal.SIGSTOP)
    try:
        run_id = _start(cluster, tmp_path, 3, f"[[queue:60]] a stalled wait {marker}")
        holders = _wait_deferred(cluster, run_id, 3)
    finally:
        cluster.stack.signal_session(b, signal.SIGCONT)
    assert set(holders.values()) == {a}, holders
    cluster.wait_heartbeating([b], fresh=3, timeout=60)
    remote_ids = [_remote_id(cluster, run_id, i) for i in range(3)]
    job_a, job_b = cluster.stack.job_id(a), cluster.stack.job_id(b)
    assert job_a is not None and job_b is not None

    stalled_at = time.time()
    cluster.stack.signal_session(a, signal.SIGSTOP)
    try:
        wait_until(
            lambda: sorted(_holders(cluster, run_id).values()) == [b] * 3,
            HEALTH_CHECK_THRESHOLD + 120,
            f"the waits moving from {a} to {b}",
        )
        for remote_id in remote_ids:
            wait_until(partial(_polls_after, cluster, remote_id, stalled_at), 60, f"{b} polling {remote_id}")
    finally:
        cluster.stack.signal_session(a, signal.SIGCONT)
    # A wakes up, finds its triggers gone and (on Airflow 3.3.0-3.3.2) calls on_kill on each.

    def killed_and_done() -> str | None:
        text = _trigger_logs(cluster, run_id, job_a)
        done = text.count("cancelled by user action") >= 3 and text.count("trigger completed") >= 3
        return text if done else None

    logs = wait_until(killed_and_done, 120, f"{a} running on_kill for the three moved waits")
    assert logs.count("is still deferred") == 3, logs[-3000:]
    assert "Cancelled GPTProto task" not in logs
    assert all(t["status"] != "cancelled" for t in _remote(cluster, marker))
    _assert_delivered_once(cluster, run_id, marker, tmp_path, 3)


def test_killed_triggerer_waits_resume_on_the_survivor(
    cluster: Cluster, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """(c) SIGKILL the triggerer holding waits: they resume on the other one; the failover is measured."""
    marker = f"failover-{secrets.token_hex(4)}"
    run_id = _start(cluster, tmp_path, 3, f"[[queue:40]] a failover {marker}")
    holders = _wait_deferred(cluster, run_id, 3)
    victim = holders[0]
    (survivor,) = [t for t in cluster.triggerers if t != victim]
    moved = [_remote_id(cluster, run_id, i) for i, holder in holders.items() if holder == victim]

    killed_at = time.time()
    cluster.stack.kill(victim, signal.SIGKILL)
    try:
        firsts = [
            wait_until(
                partial(_polls_after, cluster, remote_id, killed_at),
                HEALTH_CHECK_THRESHOLD + 120,
                f"{survivor} polling {remote_id}",
            )[0]
            for remote_id in moved
        ]
    finally:
        cluster.stack.start(victim)
    failover = max(firsts) - killed_at
    record_property("failover_seconds", round(failover, 1))
    print(
        f"\nfailover: {len(moved)} waits of {victim} resumed on {survivor} "
        f"{min(firsts) - killed_at:.1f}-{failover:.1f} s after SIGKILL "
        f"(threshold {HEALTH_CHECK_THRESHOLD} s + poll interval {POLL_INTERVAL:.0f} s)"
    )
    _assert_delivered_once(cluster, run_id, marker, tmp_path, 3)


def _prompt_counts(cluster: Cluster, marker: str) -> Counter[str]:
    return Counter(str(t.get("prompt")) for t in _remote(cluster, marker))


@pytest.mark.parametrize("phase", ["create", "download"])
def test_killed_worker_pays_once(cluster: Cluster, tmp_path: Path, phase: str) -> None:
    """(d) SIGKILL the Celery worker running a generate mid-create, or a download mid-download.

    The lost task is found by its missing heartbeat and retried: the retry reattaches to (or
    refuses to re-create) the remote task, or downloads again. 0 duplicate creates, no partial video.
    """
    assert cluster.emulator is not None
    marker = f"workerkill-{phase}-{secrets.token_hex(4)}"
    # The request of that phase is held for 20 s, so the worker is killed while it is in flight. The
    # video endpoint is first HEADed by the trigger (the size), then GET by the download: skip one.
    rule = None
    if phase == "create":
        rule = cluster.emulator.add_fault(
            endpoint="create", action="latency", latency_seconds=20, prompt_contains=marker, count=1
        )
    # A download-phase video takes 20 s to render, so the rule below is in place before the trigger's HEAD.
    slow = "" if phase == "create" else "[[run:20]] "
    run_id = _start(cluster, tmp_path, 1, f"{slow}a worker kill {marker}")
    task_id = "generate" if phase == "create" else "download"
    if phase == "download":
        _wait_deferred(cluster, run_id, 1)
        remote_id = _remote_id(cluster, run_id, 0)
        rule = cluster.emulator.add_fault(
            endpoint="video", action="latency", latency_seconds=20, task_id=remote_id, skip=1, count=1
        )
    assert rule is not None

    def held() -> bool:
        return any(r["id"] == rule["id"] and r["applied"] >= 1 for r in cluster.emulator.faults())  # type: ignore[union-attr]

    wait_until(held, 240, f"the {phase} request in flight")
    ti = cluster.client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/0")
    worker = wait_until(lambda: cluster.worker_running(ti["id"]), 30, f"the worker running {task_id}")
    cluster.stack.kill(worker, signal.SIGKILL)
    cluster.stack.start(worker)

    outcome = cluster.client.wait_for_run(DAG_ID, run_id, timeout=600, poll=2.0, expect=None)
    counts = _prompt_counts(cluster, marker)
    assert list(counts.values()) == [1], f"creates per prompt: {counts}"
    stray = [p.name for p in tmp_path.iterdir() if not p.name.endswith((".mp4", ".part", ".jpg"))]
    assert stray == []  # videos (possibly a killed download's .part) and poster frames only
    for video in tmp_path.glob("*.mp4"):
        assert video.read_bytes()[4:8] == b"ftyp", f"{video.name} is not a whole MP4"
    if outcome.state == "success":
        assert len(list(tmp_path.glob("*.mp4"))) == 1
        assert int(outcome.ti(task_id, 0)["try_number"]) >= 2  # the lost try was retried
    else:  # only a create whose id was lost may stop, and it must say why instead of paying again
        assert phase == "create", cluster.client.describe_run(outcome)
        log = cluster.client.task_log(DAG_ID, run_id, "generate", map_index=0)
        assert "interrupted while creating a GPTProto task" in log, log[-3000:]
    print(f"\nworker killed mid-{phase}: run {outcome.state}, {sum(counts.values())} create(s)")


@pytest.mark.parametrize("service", ["postgres", "redis"])
def test_restarting_a_service_mid_run_pays_nothing_twice(
    cluster: Cluster, tmp_path: Path, service: str
) -> None:
    """(e) Restart Postgres, or Redis, while waits are deferred: the run ends (well or clearly), paid once."""
    marker = f"{service}-restart-{secrets.token_hex(4)}"
    run_id = _start(cluster, tmp_path, 4, f"[[run:15]] a {service} restart {marker}")
    _wait_deferred(cluster, run_id, 4)
    server = cluster.postgres if service == "postgres" else cluster.redis
    with cluster.supervised() as revived:  # a component that exits on the outage comes back
        server.restart()
        outcome = cluster.client.wait_for_run(DAG_ID, run_id, timeout=600, poll=2.0, expect=None)
    counts = _prompt_counts(cluster, marker)
    assert len(counts) == 4 and set(counts.values()) == {1}, f"creates per prompt: {counts}"
    if outcome.state == "success":
        assert len(list(tmp_path.glob("*.mp4"))) == 4
    else:
        print(cluster.client.describe_run(outcome))
    print(f"\n{service} restarted mid-run: run {outcome.state}; components restarted: {revived or 'none'}")
