"""Benchmark 2: worker-slot seconds per video, deferrable vs sync, on real Airflow.

Full mode: a real stack (dev/airflow_stack.py, LocalExecutor) runs bench/dags/
bench_worker_slots.py: 20 mapped GPTProtoGenerateVideoOperator tasks against the emulator with a
60 s generation time, first deferrable, then the same number of no-op deferrable tasks
(bench_worker_floor.py: Airflow's own cost, the baseline), then sync. Worker-held time of a task
instance = the sum of its worker phases, taken from the LocalExecutor's own accounting: every
workload it runs ends with a "Workload finished ... duration=<s> workload_id=<TI id>" record in
the scheduler's log, timed from just before the task process starts until it has exited (fork,
DAG parse, execute, report). A deferrable task has two such phases (up to the deferral, and after
the trigger fired); a sync task has one. The REST API's TI ``duration`` is shown as a cross-check
(for deferred tasks it also counts the time spent in the triggerer, because the start date
survives deferral).

Smoke mode: no Airflow processes (they take a minute to start). The operator runs in-process: its
execute() up to TaskDeferred plus execute_complete() (deferrable) against execute() (sync), with
the trigger run in between; 2 videos, 1 s generation.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import sys
import time
from typing import Any

from bench import common
from bench.common import BenchResult, Table, Target, fmt, median

DAGS_FOLDER = common.REPO_ROOT / "bench" / "dags"
DAG_IDS = {
    "deferrable": "bench_worker_slots_deferrable",
    "floor": "bench_worker_slots_floor",
    "sync": "bench_worker_slots_sync",
}
MODE_LABELS = {
    "deferrable": "deferrable",
    "floor": "floor: no-op deferrable operator (Airflow only)",
    "sync": "sync",
}
WARMUP_DAG = "bench_worker_slots_warmup"
FULL_VIDEOS = 20
FULL_GENERATION_SECONDS = 60.0
FULL_POLL_SECONDS = 5.0
# Concurrent task processes (a pool shared by both modes): 2-3 per core, so the figure is the
# task's own worker time, not the queueing of 20 process start-ups on 2 cores.
FULL_POOL_SLOTS = 5
POOL = "bench_videos"
RUN_POLL_SECONDS = 5.0
TARGET_DEFERRABLE_SECONDS = 2.0
TARGET_RATIO = 20.0
_WORKLOAD = re.compile(r"Workload finished(?P<rest>.*)$")
_DURATION = re.compile(r"duration[\"']?[=:]\s*\"?([0-9.]+(?:[eE][-+]?\d+)?)")
_WORKLOAD_ID = re.compile(r"workload_id[\"']?[=:]\s*\"?([0-9a-fA-F-]{36})")


# ================================================================================ real Airflow
def workload_durations(log_text: str) -> dict[str, list[float]]:
    """TI id -> durations of every worker phase, from LocalExecutor "Workload finished" records."""
    phases: dict[str, list[float]] = {}
    for line in log_text.splitlines():
        match = _WORKLOAD.search(line)
        if not match:
            continue
        duration, workload = _DURATION.search(line), _WORKLOAD_ID.search(line)
        if duration and workload:
            phases.setdefault(workload[1], []).append(float(duration[1]))
    return phases


def log_breakdown(log_text: str) -> list[dict[str, float]]:
    """Per worker phase, from a task's JSON log: seconds logged in total, in DAG parsing, in execute().

    Phases start at "::group::Pre Execute"; parsing runs from "Filling up the DagBag" to "Worker
    startup parse complete"; the operator's own code runs from the "::endgroup::" closing Pre Execute
    to "::group::Post Execute" (execute() or execute_complete()).
    """
    phases: list[dict[str, float]] = []
    marks: dict[str, float] = {}

    def close() -> None:
        if "start" in marks and "last" in marks:
            phases.append(
                {
                    "logged": marks["last"] - marks["start"],
                    "parse": marks.get("parsed", marks["start"]) - marks.get("parse", marks["start"]),
                    "execute": marks.get("post", marks["last"]) - marks.get("execute", marks["last"]),
                }
            )

    for line in log_text.splitlines():
        try:
            record = json.loads(line)
            at = dt.datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        event = str(record.get("event", ""))
        if event.startswith("::group::Pre Execute"):
            close()
            marks = {"start": at}
        elif event.startswith("Filling up the DagBag"):
            marks.setdefault("parse", at)
        elif event.startswith("Worker startup parse complete"):
            marks["parsed"] = at
        elif event.startswith("::endgroup::") and "parsed" in marks and "execute" not in marks:
            marks["execute"] = at
        elif event.startswith("::group::Post Execute"):
            marks["post"] = at
        if "start" in marks:
            marks["last"] = at
    close()
    return phases


def _task_log(stack: Any, dag_id: str, run_id: str, map_index: int) -> str:
    path = (
        stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / "task_id=generate"
        / f"map_index={map_index}" / "attempt=1.log"
    )  # fmt: skip
    try:
        return str(path.read_text(errors="replace"))
    except OSError:
        return ""


def _wait_run(client: Any, dag_id: str, run_id: str, timeout: float) -> list[dict[str, Any]]:
    """Poll the run until it ends (a slow API answer on a busy machine is retried, not fatal)."""
    import requests

    deadline = time.monotonic() + timeout
    state = "?"
    while time.monotonic() < deadline:
        time.sleep(RUN_POLL_SECONDS)
        try:
            state = str(client.dag_run(dag_id, run_id).get("state"))
            if state in ("success", "failed"):
                tis = [ti for ti in client.task_instances(dag_id, run_id) if ti["task_id"] == "generate"]
                if state != "success":
                    states = sorted({str(ti.get("state")) for ti in tis})
                    raise RuntimeError(f"{dag_id} run ended {state} (task states {states})")
                return tis
        except requests.RequestException:
            continue
    raise TimeoutError(f"{dag_id} did not finish within {timeout:.0f} s (last state {state})")


def _run_mode(stack: Any, mode: str, videos: int, timeout: float) -> dict[str, Any]:
    dag_id = DAG_IDS[mode]
    started = time.monotonic()
    run_id = stack.client.trigger(dag_id)
    tis = _wait_run(stack.client, dag_id, run_id, timeout)
    wall = time.monotonic() - started
    wanted = {str(ti.get("id")) for ti in tis}
    expected_phases = 1 if mode == "sync" else 2  # every deferrable task here defers once

    def all_recorded() -> dict[str, list[float]] | None:
        # The run can turn "success" before the worker has logged the last "Workload finished".
        found = workload_durations(stack.log_path("scheduler").read_text(errors="replace"))
        return found if all(len(found.get(ti, [])) >= expected_phases for ti in wanted) else None

    try:
        phases = common.wait_until(all_recorded, 30, what="every 'Workload finished' record")
    except TimeoutError:
        phases = workload_durations(stack.log_path("scheduler").read_text(errors="replace"))
    per_video = []
    for ti in tis:
        ti_phases = phases.get(str(ti.get("id")), [])
        logged = log_breakdown(_task_log(stack, dag_id, run_id, int(ti.get("map_index", -1))))
        per_video.append(
            {
                "map_index": ti.get("map_index"),
                "state": ti.get("state"),
                "phases": ti_phases,
                "worker_seconds": sum(ti_phases),
                "api_duration": ti.get("duration"),
                "parse_seconds": sum(p["parse"] for p in logged) if logged else None,
                "execute_seconds": sum(p["execute"] for p in logged) if logged else None,
            }
        )
    missing = [v["map_index"] for v in per_video if not v["phases"]]
    if missing:
        raise RuntimeError(f"{mode}: no 'Workload finished' record for map indexes {missing[:10]}")
    return {"mode": mode, "videos": videos, "wall_seconds": wall, "per_video": per_video}


def measure_real(videos: int, generation: float, poll: float) -> dict[str, dict[str, Any]]:
    from dev.airflow_stack import AirflowStack

    results: dict[str, dict[str, Any]] = {}
    with (
        common.emulator(core=None, queue_seconds=0, run_seconds=generation, render_fps=1) as emu,
        common.emulator(core=None, queue_seconds=0, run_seconds=1, render_fps=1) as warmup_emu,
        common.scratch_dir("bench-worker-slots-") as scratch,
    ):
        env = {
            "AIRFLOW_CONN_GPTPROTO_DEFAULT": common.conn_json(emu.url),
            "AIRFLOW_CONN_GPTPROTO_WARMUP": common.conn_json(warmup_emu.url),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(common.REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
            "BENCH_WORKER_VIDEOS": str(videos),
            "BENCH_WORKER_POLL": str(poll),
            "BENCH_WORKER_POOL": POOL,
            "BENCH_TRIGGERER_N": "10",  # the other bench DAG in the folder stays small
        }
        with AirflowStack(
            scratch / "airflow-home",
            dags_folder=DAGS_FOLDER,
            extra_env=env,
            wait_for_dags=(WARMUP_DAG, *DAG_IDS.values()),
            pools={POOL: FULL_POOL_SLOTS},
            startup_timeout=300.0,
        ) as stack:
            waves = -(-videos // FULL_POOL_SLOTS)
            timeout = waves * (generation + 60) + 300
            _wait_run(stack.client, WARMUP_DAG, stack.client.trigger(WARMUP_DAG), 300)
            for mode in DAG_IDS:  # the floor runs right after ours, under the same conditions
                results[mode] = _run_mode(stack, mode, videos, timeout)
    return results


# ================================================================================ in-process (smoke)
class _FakeTI:
    """Just what the operator touches on ``context["ti"]``."""

    def __init__(self, task_id: str = "generate") -> None:
        self.xcom: dict[str, Any] = {}
        # The task instance's identity: the operator derives the seed it sends from it.
        self.dag_id, self.run_id, self.task_id, self.map_index = "bench_worker_slots", "bench", task_id, -1

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def _in_process(videos: int, poll: float) -> dict[str, Any]:
    """Operator-side worker time per video, measured in this process (see module docstring)."""
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_provider_gptproto.operators.gptproto import GPTProtoGenerateVideoOperator

    async def first_event(trigger: Any) -> Any:
        async for event in trigger.run():
            return event.payload
        return None

    results: dict[str, Any] = {}
    for mode in ("deferrable", "sync"):
        per_video = []
        for i in range(videos):
            op = GPTProtoGenerateVideoOperator(
                task_id=f"smoke_{mode}_{i}",
                prompt=f"bench smoke {i}",
                deferrable=mode == "deferrable",
                poll_interval=poll,
            )
            context: dict[str, Any] = {"ti": _FakeTI(op.task_id)}
            phases = []
            t0 = time.perf_counter()
            try:
                op.execute(context)
                phases.append(time.perf_counter() - t0)
            except TaskDeferred as deferral:
                phases.append(time.perf_counter() - t0)
                event = asyncio.run(first_event(deferral.trigger))
                t1 = time.perf_counter()
                op.execute_complete(context, event)
                phases.append(time.perf_counter() - t1)
            per_video.append(
                {
                    "map_index": i,
                    "phases": phases,
                    "worker_seconds": sum(phases),
                    "api_duration": None,
                    "parse_seconds": None,
                    "execute_seconds": sum(phases),
                }
            )
        results[mode] = {"mode": mode, "videos": videos, "wall_seconds": 0.0, "per_video": per_video}
    return results


def measure_in_process(videos: int, generation: float, poll: float) -> dict[str, dict[str, Any]]:
    with common.emulator(core=None, queue_seconds=0, run_seconds=generation) as emu:
        env = common.client_env(AIRFLOW_CONN_GPTPROTO_DEFAULT=common.conn_json(emu.url))
        args = [common.PY, "-m", "bench.worker_slots", "inprocess", f"--videos={videos}", f"--poll={poll}"]
        with common.Child(args, name="worker-slots-inprocess", env=env) as child:
            out = child.communicate(timeout=120 + videos * generation * 3)
    data: dict[str, dict[str, Any]] = json.loads(out.strip().splitlines()[-1])
    return data


# ================================================================================ report
def run(smoke: bool = False) -> BenchResult:
    started = time.monotonic()
    videos = 2 if smoke else FULL_VIDEOS
    generation = 1.0 if smoke else FULL_GENERATION_SECONDS
    poll = 0.25 if smoke else FULL_POLL_SECONDS
    result = BenchResult(
        "worker_slots",
        "Benchmark 2: worker-slot time per video",
        "smoke" if smoke else "full",
    )
    if smoke:
        result.method.append(
            "Smoke mode: in-process operator timing (no Airflow processes), so it shows the operator's own "
            "share only; the full run measures real LocalExecutor workloads."
        )
        data = measure_in_process(videos, generation, poll)
    else:
        result.method.extend(
            [
                "Real Airflow (api-server, scheduler with LocalExecutor, dag-processor, triggerer; SQLite), "
                f"{videos} mapped GPTProtoGenerateVideoOperator tasks, emulator generation time "
                f"{generation:.0f} s (queue 0 s), poll interval {poll:.0f} s; deferrable run first, "
                f"then the floor, then sync; all in one pool of {FULL_POOL_SLOTS} slots, so at most "
                f"{FULL_POOL_SLOTS} task "
                "processes run at once on this 2-core machine (deferred tasks free their slot). A warm-up "
                "run (5 deferrable videos against a 1 s emulator) goes first, so the stack's first-use "
                "costs are not charged to the measured runs.",
                "Floor (the baseline): bench/dags/bench_worker_floor.py, as many mapped tasks of an operator "
                "that defers once on a core TimeDeltaTrigger (10 s) and resumes with nothing to do, in a DAG "
                "file without the provider: what Airflow itself charges any deferrable task on this stack.",
                "Airflow's supervisor often holds a finished phase for up to [workers] "
                "min_heartbeat_interval longer (1 s in this stack; Airflow's default is 5 s): when the "
                "task process's sockets close before it can be reaped, it waits on an empty selector for "
                "that long. About half of all phases pay it, the floor's as much as ours, which makes "
                "phase times bimodal.",
                "Worker-held seconds of a task instance = sum of its LocalExecutor workload durations "
                "('Workload finished ... duration=... workload_id=<TI id>' in the scheduler log): from just "
                "before the task process starts until it has exited, per worker phase.",
                "REST `duration` is a cross-check: equal to worker time for sync tasks; for deferrable tasks "
                "it also includes the time in the triggerer (start_date survives deferral).",
                "'of which' columns come from each task's own log (JSON timestamps): DAG parsing "
                "('Filling up the DagBag' to 'Worker startup parse complete') and the operator's code "
                "(execute() / execute_complete(), between the Pre and Post Execute groups), summed over "
                "phases. The rest of a phase is Airflow's task start-up and reporting.",
                "The emulator renders each MP4 on first access, which here is the trigger's HEAD for the "
                "video size, in the triggerer (no worker slot held); --render-fps 1 keeps that at ~0.1 s.",
            ]
        )
        data = measure_real(videos, generation, poll)
    rows = []
    summary: dict[str, float] = {}
    for mode in [m for m in DAG_IDS if m in data]:
        per_video = data[mode]["per_video"]
        held = [v["worker_seconds"] for v in per_video]
        phases = [len(v["phases"]) for v in per_video]
        api = [float(v["api_duration"]) for v in per_video if v.get("api_duration") is not None]
        parse = [float(v["parse_seconds"]) for v in per_video if v.get("parse_seconds") is not None]
        code = [float(v["execute_seconds"]) for v in per_video if v.get("execute_seconds") is not None]
        summary[mode] = sum(held) / len(held)
        rows.append(
            [
                MODE_LABELS[mode],
                fmt(len(per_video)),
                fmt(summary[mode], 2),
                fmt(median(held), 2),
                fmt(max(held), 2),
                fmt(sum(held), 1),
                f"{min(phases)}-{max(phases)}",
                fmt(sum(parse) / len(parse), 2) if parse else "-",
                fmt(sum(code) / len(code), 2) if code else "-",
                fmt(sum(api) / len(api), 1) if api else "-",
                fmt(data[mode]["wall_seconds"], 0) if data[mode]["wall_seconds"] else "-",
            ]
        )
    result.tables.append(
        Table(
            "Worker-held seconds per video (means unless stated)",
            [
                "mode",
                "videos",
                "mean s/video",
                "median",
                "max",
                "total worker s",
                "worker phases/TI",
                "of which DAG parse s",
                "of which operator code s",
                "REST duration mean s",
                "run wall s",
            ],
            rows,
        )
    )
    deferrable, sync = summary["deferrable"], summary["sync"]
    ratio = sync / deferrable if deferrable else float("nan")
    result.figures.update(
        {"deferrable_worker_seconds_per_video": deferrable, "sync_worker_seconds_per_video": sync}
    )
    if "floor" in summary:
        floor = summary["floor"]
        result.figures["floor_worker_seconds_per_task"] = floor
        result.notes.append(
            f"Airflow's own floor in this run: {floor:.2f} s per deferrable task that does nothing; the "
            f"provider adds {deferrable - floor:.2f} s per video on top (a DAG file importing the provider, "
            "the create, state store and XCom round trips, the status check, the extra link)."
        )
    result.targets.extend(
        [
            Target(
                "Deferrable worker-held time per video",
                f"{deferrable:.2f} s",
                f"< {TARGET_DEFERRABLE_SECONDS:.0f} s",
                deferrable < TARGET_DEFERRABLE_SECONDS if not smoke else None,
            ),
            Target(
                "Sync / deferrable worker-held time",
                f"{sync:.1f} s / {deferrable:.2f} s = {ratio:.1f}x",
                f">= {TARGET_RATIO:.0f}x",
                ratio >= TARGET_RATIO if not smoke else None,
            ),
        ]
    )
    if smoke:
        result.notes.append("Targets are judged in the full run only (smoke generation time is 1 s).")
    result.seconds = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["inprocess"]:
        parser = argparse.ArgumentParser(prog="bench.worker_slots inprocess")
        parser.add_argument("--videos", type=int, default=2)
        parser.add_argument("--poll", type=float, default=0.25)
        args = parser.parse_args(argv[1:])
        print(json.dumps(_in_process(args.videos, args.poll)), flush=True)
        return
    parser = argparse.ArgumentParser(prog="python -m bench.worker_slots")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.smoke).to_dict(), indent=2, default=str))


if __name__ == "__main__":
    main()
