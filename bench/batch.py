"""Benchmark 5: one batch task vs dynamic task mapping for many videos, on real Airflow.

Full mode: a real stack (dev/airflow_stack.py, LocalExecutor) runs bench/dags/
bench_batch.py against the emulator (20 s generation): 1,000 videos as one
GPTProtoBatchGenerateVideosOperator (``max_in_flight=100``), then the same 1,000 as mapped
generate + download pairs (a pool of 100, ``[core] max_map_length`` raised), then 10,000 prompts
in one batch (``max_in_flight=1000``). Worker-slot seconds come from the LocalExecutor's
"Workload finished ... duration" records (as in benchmark 2); API requests from the emulator's
own counters; peak RSS by sampling the task processes and the triggerer's process tree once a
second.

Smoke mode: no Airflow processes; the batch operator runs in-process (execute, the trigger,
execute_complete ...) for 20 videos with 1 s generations, timing its worker phases.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from typing import Any

import psutil

from bench import common
from bench.common import BenchResult, Table, Target, fmt
from bench.worker_slots import workload_durations

DAGS_FOLDER = common.REPO_ROOT / "bench" / "dags"
POOL = "bench_batch"
# The big batch runs 1,000 in flight: at 100, 10,000 twenty-second videos would take an hour of
# waves on their own, and the point of that run is the memory of a big batch, not its pace.
FULL = {
    "videos": 1000,
    "big": 10_000,
    "in_flight": 100,
    "big_in_flight": 1000,
    "pool": 100,
    "generation": 20.0,
    "poll": 10.0,
}
TARGET_SLOT_SECONDS = 0.1
TARGET_RATIO = 15.0


class TreeRSS(common.PeriodicSampler):
    """Peak RSS of processes matching ``pick(pid, cmdline)`` under ``roots``' sessions, sampled 1/s."""

    def __init__(self, roots: list[int], pick: Any) -> None:
        super().__init__(1.0, "tree-rss")
        self.roots, self.pick = roots, pick
        self.peak_single = 0
        self.peak_total = 0

    def sample(self) -> bool:
        sids = {os.getsid(r) for r in self.roots if psutil.pid_exists(r)}
        total = 0
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if os.getsid(proc.pid) in sids and self.pick(" ".join(proc.info["cmdline"] or [])):
                    rss = int(proc.memory_info().rss)
                    total += rss
                    self.peak_single = max(self.peak_single, rss)
            except (psutil.Error, OSError):
                continue
        self.peak_total = max(self.peak_total, total)
        return True


def _run_dag(stack: Any, emu_url: str, dag_id: str, timeout: float) -> dict[str, Any]:
    from airflow_provider_gptproto.emulator.harness import EmulatorAdmin

    admin = EmulatorAdmin(emu_url)
    admin.reset()
    client = stack.client
    started = time.monotonic()
    with (
        TreeRSS([stack.pid("scheduler")], lambda cmd: cmd.startswith("airflow worker -- ")) as worker,
        TreeRSS([stack.pid("triggerer")], lambda cmd: True) as triggerer,
    ):
        run_id = client.trigger(dag_id)
        outcome = client.wait_for_run(dag_id, run_id, timeout=timeout, poll=5.0)
    wall = time.monotonic() - started
    tis = outcome.task_instances
    ids = {str(ti["id"]) for ti in tis}
    phases: dict[str, list[float]] = {}

    def recorded() -> bool:
        nonlocal phases
        phases = workload_durations(stack.log_path("scheduler").read_text(errors="replace"))
        return all(phases.get(i) for i in ids)

    with contextlib.suppress(TimeoutError):
        common.wait_until(recorded, 30, what="every 'Workload finished' record")
    stats = admin.stats()
    requests = stats["requests"]
    return {
        "dag_id": dag_id,
        "wall_seconds": wall,
        "task_instances": len(tis),
        "worker_phases": sum(len(phases.get(i, [])) for i in ids),
        "worker_seconds": sum(sum(phases.get(i, [])) for i in ids),
        "api_requests": sum(v for k, v in requests.items() if k not in ("video", "last_frame")),
        "video_requests": requests.get("video", 0),
        "tasks_created": stats["tasks_created"],
        "peak_worker_rss": worker.peak_single,
        "peak_triggerer_rss": triggerer.peak_total,
    }


def measure_real(cfg: dict[str, Any], big: bool = True, mapped: bool = True) -> dict[str, dict[str, Any]]:
    from dev.airflow_stack import AirflowStack

    results: dict[str, dict[str, Any]] = {}
    with (
        common.emulator(core=None, queue_seconds=0, run_seconds=cfg["generation"], render_fps=1) as emu,
        common.scratch_dir("bench-batch-") as scratch,
    ):
        env = {
            "AIRFLOW_CONN_GPTPROTO_DEFAULT": common.conn_json(emu.url),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(common.REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
            "BENCH_BATCH_VIDEOS": str(cfg["videos"]),
            "BENCH_BATCH_BIG": str(cfg["big"]),
            "BENCH_BATCH_IN_FLIGHT": str(cfg["in_flight"]),
            "BENCH_BATCH_BIG_IN_FLIGHT": str(cfg["big_in_flight"]),
            "BENCH_BATCH_POLL": str(cfg["poll"]),
            "BENCH_BATCH_POOL": POOL,
            "BENCH_BATCH_OUT": str(scratch / "videos"),
            "BENCH_WORKER_VIDEOS": "2",  # the other bench DAGs in the folder stay small
            "BENCH_TRIGGERER_N": "10",
        }
        with AirflowStack(
            scratch / "airflow-home",
            dags_folder=DAGS_FOLDER,
            extra_env=env,
            wait_for_dags=("bench_batch_batch", "bench_batch_mapped", "bench_batch_big"),
            pools={POOL: cfg["pool"]},
            parallelism=16,
            config={"core": {"max_map_length": max(20_000, 2 * cfg["videos"])}},
            startup_timeout=300.0,
        ) as stack:
            waves = -(-cfg["videos"] // cfg["in_flight"])
            timeout = waves * (cfg["generation"] + 120) + 900
            results["batch"] = _run_dag(stack, emu.url, "bench_batch_batch", timeout)
            if mapped:
                results["mapped"] = _run_dag(stack, emu.url, "bench_batch_mapped", timeout * 4)
            if big:
                big_timeout = -(-cfg["big"] // cfg["in_flight"]) * (cfg["generation"] + 120) + 1800
                results["big"] = _run_dag(stack, emu.url, "bench_batch_big", big_timeout)
    return results


# ================================================================================ in-process (smoke)
class _ByName:
    """``context["outlet_events"]`` keyed by asset name (Assets are unhashable on Airflow 3.1)."""

    def __init__(self, events: dict[str, Any]) -> None:
        self.events = events

    def __getitem__(self, asset: Any) -> Any:
        return self.events[asset.name]


def _in_process(videos: int, in_flight: int, poll: float) -> dict[str, Any]:
    with common.scratch_dir("bench-batch-smoke-") as scratch:
        return _in_process_run(videos, in_flight, poll, str(scratch))


def _in_process_run(videos: int, in_flight: int, poll: float, destination: str) -> dict[str, Any]:
    from collections import defaultdict
    from types import SimpleNamespace

    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_gptproto.operators.batch import GPTProtoBatchGenerateVideosOperator

    async def first_event(trigger: Any) -> Any:
        async for event in trigger.run():
            return event.payload
        return None

    op = GPTProtoBatchGenerateVideosOperator(
        task_id="smoke",
        prompts=[f"bench smoke {i % 3}" for i in range(videos)],
        seed=42,
        destination=destination,
        max_in_flight=in_flight,
        poll_interval=poll,
        deferrable=True,
    )
    context: dict[str, Any] = {"ti": SimpleNamespace(xcom_push=lambda **_: None)}
    events: dict[str, Any] = defaultdict(lambda: SimpleNamespace(extra={}))
    context["outlet_events"] = _ByName(events)
    phases: list[float] = []
    started = time.perf_counter()
    step, event = op.execute, None
    while True:
        t0 = time.perf_counter()
        try:
            summary = step(context) if event is None else step(context, event)
            phases.append(time.perf_counter() - t0)
            break
        except TaskDeferred as deferral:
            phases.append(time.perf_counter() - t0)
            event = asyncio.run(first_event(deferral.trigger))
            step = op.execute_complete
    return {"phases": phases, "wall": time.perf_counter() - started, "summary": summary}


def measure_in_process(videos: int, in_flight: int) -> dict[str, Any]:
    from airflow_provider_gptproto.emulator.harness import EmulatorAdmin

    with common.emulator(core=None, queue_seconds=0, run_seconds=1.0, render_fps=1) as emu:
        env = common.client_env(AIRFLOW_CONN_GPTPROTO_DEFAULT=common.conn_json(emu.url))
        args = [common.PY, "-m", "bench.batch", "inprocess", f"--videos={videos}", f"--in-flight={in_flight}"]
        with common.Child(args, name="batch-inprocess", env=env) as child:
            out = child.communicate(timeout=300)
        data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        stats = EmulatorAdmin(emu.url).stats()
    data["api_requests"] = sum(v for k, v in stats["requests"].items() if k not in ("video", "last_frame"))
    return data


# ================================================================================ report
def _row(label: str, videos: int, r: dict[str, Any]) -> list[Any]:
    return [
        label,
        fmt(videos),
        fmt(r["task_instances"]),
        fmt(r["worker_phases"]),
        fmt(r["worker_seconds"], 1),
        fmt(r["worker_seconds"] / videos, 3),
        fmt(r["wall_seconds"], 0),
        fmt(r["api_requests"] / videos, 2),
        fmt(r["tasks_created"]),
        fmt(r["peak_worker_rss"] / 2**20, 0),
        fmt(r["peak_triggerer_rss"] / 2**20, 0),
    ]


def run(
    smoke: bool = False, *, cfg: dict[str, Any] | None = None, big: bool = True, mapped: bool = True
) -> BenchResult:
    started = time.monotonic()
    result = BenchResult(
        "batch", "Benchmark 5: a batch task vs dynamic task mapping", "smoke" if smoke else "full"
    )
    if smoke:
        videos, in_flight = 20, 8
        result.method.append(
            f"Smoke mode: the batch operator in-process against the emulator (1 s generation), {videos} "
            f"videos, max_in_flight={in_flight}; worker phases timed around execute()/execute_complete(). "
            "No Airflow processes, so no mapped comparison; the full run measures both on real Airflow."
        )
        data = measure_in_process(videos, in_flight)
        held = sum(data["phases"])
        result.tables.append(
            Table(
                "Batch operator in-process",
                ["videos", "worker phases", "operator seconds", "s/video", "API requests/video"],
                [
                    [
                        videos,
                        len(data["phases"]),
                        fmt(held, 2),
                        fmt(held / videos, 3),
                        fmt(data["api_requests"] / videos, 2),
                    ]
                ],
            )
        )
        result.figures.update(
            {"batch_operator_seconds_per_video": held / videos, "worker_phases": len(data["phases"])}
        )
        result.targets.append(
            Target(
                "Batch worker-slot s/video (operator share only)",
                f"{held / videos:.3f} s",
                f"<= {TARGET_SLOT_SECONDS} s",
                None,
            )
        )
        result.notes.append("Targets are judged in the full run only.")
        result.seconds = time.monotonic() - started
        return result
    cfg = {**FULL, **(cfg or {})}
    result.method.extend(
        [
            "Real Airflow (api-server, scheduler with LocalExecutor parallelism 16, dag-processor, "
            f"triggerer; SQLite) against the emulator: {cfg['generation']:.0f} s generation, queue 0 s, poll "
            f"{cfg['poll']:.0f} s. Batch: {cfg['videos']} videos in one GPTProtoBatchGenerateVideosOperator "
            f"(deferrable, max_in_flight={cfg['in_flight']}). Mapped: the same {cfg['videos']} as "
            f"mapped deferrable generate + download pairs in a pool of {cfg['pool']} slots, "
            "max_map_length raised. "
            "Same stack, same emulator, batch first.",
            "Worker-slot seconds = sum of LocalExecutor 'Workload finished ... duration' records of every TI "
            "of the run (as benchmark 2). API requests = create + get + list + delete served by the emulator "
            "(video downloads listed apart). Peak RSS sampled once a second: the largest single task "
            "process, and the triggerer's whole process tree.",
            "Ten distinct prompts with a fixed seed, so the emulator renders ten MP4s (its CPU stays off the "
            "measurement); every video is still created, polled and downloaded separately.",
        ]
    )
    data = measure_real(cfg, big=big, mapped=mapped)
    b = data["batch"]
    m = data.get("mapped", b)  # a batch-only reduced run compares the batch with itself
    rows = [_row("batch", cfg["videos"], b)] + ([_row("mapped", cfg["videos"], m)] if mapped else [])
    if "big" in data:
        rows.append(_row("batch (big)", cfg["big"], data["big"]))
    result.tables.append(
        Table(
            "Batch vs mapped",
            ["run", "videos", "task instances", "worker phases", "worker s", "worker s/video", "wall s",
             "API requests/video", "remote tasks created", "peak task RSS MiB", "peak triggerer RSS MiB"],
            rows,
        )
    )  # fmt: skip
    per_b, per_m = b["worker_seconds"] / cfg["videos"], m["worker_seconds"] / cfg["videos"]
    ratio = per_m / per_b if per_b else float("nan")
    result.figures.update(
        {
            "batch_worker_seconds_per_video": per_b,
            "mapped_worker_seconds_per_video": per_m,
            "batch_wall_seconds": b["wall_seconds"],
            "mapped_wall_seconds": m["wall_seconds"],
        }
    )
    result.targets.extend(
        [
            Target(
                "Batch worker-slot s/video",
                f"{per_b:.3f} s",
                f"<= {TARGET_SLOT_SECONDS} s",
                per_b <= TARGET_SLOT_SECONDS,
            ),
            Target(
                "Mapped / batch worker-slot s",
                f"{per_m:.2f} / {per_b:.3f} = {ratio:.0f}x",
                f">= {TARGET_RATIO:.0f}x",
                ratio >= TARGET_RATIO if mapped else None,
            ),
            Target(
                "Wall time batch vs mapped",
                f"{b['wall_seconds']:.0f} s vs {m['wall_seconds']:.0f} s",
                "<= mapped",
                b["wall_seconds"] <= m["wall_seconds"] if mapped else None,
            ),
            Target(
                "API requests/video batch vs mapped",
                f"{b['api_requests'] / cfg['videos']:.2f} vs {m['api_requests'] / cfg['videos']:.2f}",
                "<= mapped",
                b["api_requests"] <= m["api_requests"] if mapped else None,
            ),
        ]
    )  # fmt: skip
    if "big" in data:
        g = data["big"]
        result.notes.append(
            f"{cfg['big']} prompts in one batch (max_in_flight={cfg['big_in_flight']}): wall "
            f"{g['wall_seconds']:.0f} s, peak task process RSS "
            f"{g['peak_worker_rss'] / 2**20:.0f} MiB, peak triggerer tree RSS "
            f"{g['peak_triggerer_rss'] / 2**20:.0f} MiB."
        )
    result.seconds = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["inprocess"]:
        parser = argparse.ArgumentParser(prog="bench.batch inprocess")
        parser.add_argument("--videos", type=int, default=20)
        parser.add_argument("--in-flight", type=int, default=8)
        args = parser.parse_args(argv[1:])
        print(json.dumps(_in_process(args.videos, args.in_flight, 0.25)), flush=True)
        return
    parser = argparse.ArgumentParser(prog="python -m bench.batch")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--videos", type=int, default=None, help="reduced run: videos per batch/mapped run")
    parser.add_argument(
        "--big", type=int, default=None, help="reduced run: prompts in the big batch (0: skip)"
    )
    parser.add_argument("--generation", type=float, default=None)
    parser.add_argument("--big-in-flight", type=int, default=None, help="max_in_flight of the big batch")
    parser.add_argument("--no-mapped", action="store_true", help="reduced run: skip the mapped run")
    args = parser.parse_args(argv)
    given = (("videos", args.videos), ("big", args.big), ("generation", args.generation))
    cfg = {k: v for k, v in (*given, ("big_in_flight", args.big_in_flight)) if v}
    result = run(args.smoke, cfg=cfg, big=args.big != 0, mapped=not args.no_mapped)
    print(json.dumps(result.to_dict(), indent=2, default=str))


if __name__ == "__main__":
    main()
