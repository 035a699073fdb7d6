"""Benchmark 1, last point: N = 1,000 GPTProtoTaskTriggers inside a real ``airflow triggerer``.

A real Airflow stack (dev/airflow_stack.py) runs bench/dags: 1,000 mapped tasks that start
directly in the triggerer (``start_from_trigger``: no worker runs) on GPTProtoTaskTriggers polling
the minimal JSON server, then a probe trigger on the same loop measures lag, CPU and sockets of the
trigger-runner process for one window. The triggerer and its children are pinned to the client
core; the server and the other Airflow components share the server core.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from bench import common
from bench.common import BenchResult, Table, Target, fmt

POLLER_DAG = "bench_triggerer_pollers"
PROBE_DAG = "bench_triggerer_probe"
DAGS_FOLDER = common.REPO_ROOT / "bench" / "dags"
CONN_ID = "gptproto_bench"
LOAD_TIMEOUT = 420.0


def _task_gets(url: str) -> tuple[int, float]:
    with urllib.request.urlopen(url + "/_stats", timeout=10) as resp:
        stats = json.load(resp)
    return int(stats["requests"]["task_get"]), float(stats["time"])


def _rate(url: str, seconds: float) -> float:
    count0, t0 = _task_gets(url)
    time.sleep(seconds)
    count1, t1 = _task_gets(url)
    return (count1 - count0) / max(1e-6, t1 - t0)


def _rate_or_zero(url: str, seconds: float) -> float:
    """:func:`_rate`, or 0 while the busy server does not answer its stats in time (not yet loaded)."""
    try:
        return _rate(url, seconds)
    except OSError:
        return 0.0


def _pin_stack(stack: Any, runner_alone: bool = False, also: tuple[int, ...] = ()) -> None:
    """Triggerer (and its trigger-runner child) on the client core, everything else on the server core.

    ``runner_alone``: the trigger-runner alone on the client core, as the floor's client process;
    the triggerer's supervisor may run on either core. Loading 10,000 triggers keeps it busy for
    minutes (building and serialising their workloads: Airflow's own work) while the runner waits for
    them. Every other Airflow process (and ``also``, e.g. Postgres) runs at nice 19: a scheduler
    tracking 10,000 task instances takes ~60% of a core, and the server, which had its core alone
    for the floor, must answer first (in production it is another machine).
    """
    for name in ("api-server", "scheduler", "dag-processor"):
        if stack.is_running(name):
            common.pin_tree(stack.pid(name), [common.SERVER_CORE])
            if runner_alone:
                common.renice_tree(stack.pid(name), 19)
    triggerer = stack.pid("triggerer")
    both = [common.CLIENT_CORE, common.SERVER_CORE]
    common.pin_tree(triggerer, both if runner_alone else [common.CLIENT_CORE])
    if runner_alone and (runner := _runner_pid(triggerer)) is not None:
        psutil.Process(triggerer).nice(19)  # the supervisor only; the runner keeps nice 0
        common.pin_tree(runner, [common.CLIENT_CORE])
    for pid in also if runner_alone else ():
        common.renice_tree(pid, 19)


def _runner_pid(triggerer_pid: int) -> int | None:
    """The trigger-runner subprocess (the process whose loop runs the triggers)."""
    try:
        children = psutil.Process(triggerer_pid).children(recursive=True)
    except psutil.Error:
        return None
    return children[0].pid if children else None


_BLOCKED = re.compile(r"was blocked for ([0-9.]+) seconds")
_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)")


def _blocked_in_window(log_text: str, start: float, end: float) -> list[str]:
    """Durations of the triggerer's own "async thread was blocked" warnings logged inside the window."""
    found = []
    for line in log_text.splitlines():
        blocked, stamp = _BLOCKED.search(line), _STAMP.search(line)
        if not (blocked and stamp):
            continue
        at = dt.datetime.fromisoformat(stamp[1]).replace(tzinfo=dt.timezone.utc).timestamp()
        if start <= at <= end:
            found.append(blocked[1])
    return found


def probe_env(
    server_url: str, n: int, interval: float, result_path: Path | str, window: float, kind: str = "gptproto"
) -> dict[str, str]:
    """What the poller and probe DAGs read from every Airflow component's environment."""
    return {
        f"AIRFLOW_CONN_{CONN_ID.upper()}": common.conn_json(server_url),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(common.REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "BENCH_TRIGGERER_CONN_ID": CONN_ID,
        "BENCH_TRIGGERER_N": str(n),
        "BENCH_TRIGGERER_INTERVAL": str(interval),
        "BENCH_PROBE_RESULT": str(result_path),
        "BENCH_PROBE_STATS_URL": server_url + "/_stats",
        "BENCH_PROBE_WINDOW": str(window),
        "BENCH_TRIGGERER_KIND": kind,
    }


def _triggers_started(logs: Path) -> int:
    """How many poller triggers have started (each opens its own trigger log file)."""
    return sum(1 for _ in logs.glob(f"dag_id={POLLER_DAG}/*/task_id=poll/*/*.log.trigger.*.log"))


def measure(
    n: int = 1000,
    interval: float = 5.0,
    window: float = 60.0,
    *,
    kind: str = "gptproto",
    runner_alone: bool = False,
    load_timeout: float = LOAD_TIMEOUT,
    postgres: bool = False,
) -> dict[str, Any]:
    """Start everything, load N triggers, run the probe for ``window`` seconds; returns the report.

    ``kind="idle"`` loads N idle DateTimeTriggers instead (no polling); ``runner_alone``: see
    :func:`_pin_stack`; ``postgres``: the metadata DB in Debian's Postgres (as ``make cluster``)
    instead of SQLite, whose single writer lock the scheduler holds for seconds while it expands
    10,000 mapped task instances (the triggerer and dag-processor then die on "database is locked").
    """
    from dev.airflow_stack import AirflowStack
    from dev.services import PostgresServer, open_for_postgres

    started = time.monotonic()
    with contextlib.ExitStack() as resources:
        server = resources.enter_context(common.json_server())
        scratch = resources.enter_context(common.scratch_dir("bench-triggerer-"))
        background: tuple[int, ...] = ()
        config: dict[str, dict[str, Any]] = {
            "triggerer": {"capacity": n + 50},
            "core": {"max_map_length": max(1024, n + 10)},
        }
        if postgres:
            open_for_postgres(scratch)
            database = PostgresServer(scratch / "postgres")
            database.start()
            resources.callback(database.stop)
            if database.pid is not None:
                common.pin_tree(database.pid, [common.SERVER_CORE])
                background = (database.pid,)
            config["database"] = {"sql_alchemy_conn": database.url}
        result_path = scratch / "probe.json"
        env = probe_env(server.url, n, interval, result_path, window, kind)
        with AirflowStack(
            scratch / "airflow-home",
            dags_folder=DAGS_FOLDER,
            extra_env=env,
            wait_for_dags=(POLLER_DAG, PROBE_DAG),
            config=config,
            startup_timeout=300.0,
        ) as stack:
            stack_ready = time.monotonic() - started
            _pin_stack(stack, runner_alone, background)
            load_started = time.monotonic()
            stack.client.trigger(POLLER_DAG)
            intended = n / interval
            if kind == "idle":
                logs = scratch / "airflow-home" / "logs"
                common.wait_until(
                    lambda: _triggers_started(logs) >= n, load_timeout, interval=5.0, what=f"{n} idle waits"
                )
            else:
                common.wait_until(
                    lambda: _rate_or_zero(server.url, interval) >= 0.95 * intended,
                    load_timeout,
                    interval=0.0,
                    what=f"{n} triggers polling at 95% of {intended:.0f}/s",
                )
            load_seconds = time.monotonic() - load_started
            # Again: the trigger-runner may have been (re)spawned meanwhile.
            _pin_stack(stack, runner_alone, background)
            triggerer_pid = stack.pid("triggerer")
            runner = _runner_pid(triggerer_pid)
            time.sleep(interval)  # one more full cycle before measuring
            with common.Sampler(triggerer_pid, interval=1.0) as parent_sampler:
                stack.client.trigger(PROBE_DAG)
                common.wait_until(result_path.exists, window + 180, what="probe report")
                time.sleep(0.5)
            report: dict[str, Any] = json.loads(Path(result_path).read_text())
            inside = parent_sampler.between(report["window_start"], report["window_end"])
            if len(inside) >= 2:
                report["supervisor_cpu_seconds"] = inside[-1].cpu - inside[0].cpu
                report["supervisor_seconds"] = inside[-1].at - inside[0].at
                report["supervisor_rss"] = max(s.rss for s in inside)
            blocked = _blocked_in_window(
                stack.log_tail("triggerer", 20000), report["window_start"], report["window_end"]
            )
            report.update(
                {
                    "n": n,
                    "interval": interval,
                    "kind": kind,
                    "runner_alone": runner_alone,
                    "runner_pid_seen": runner,
                    "stack_ready_seconds": stack_ready,
                    "load_seconds": load_seconds,
                    "blocked_warnings": len(blocked),
                    "blocked_max_seconds": max((float(b) for b in blocked), default=0.0),
                }
            )
    return report


def run_into(result: BenchResult, *, n: int = 1000, interval: float = 5.0, window: float = 60.0) -> None:
    """Measure the point and add its table, figures and target to benchmark 1's result."""
    try:
        report = measure(n, interval, window, postgres=True)
    except Exception as exc:  # the other points stand on their own; say what went wrong
        result.notes.append(f"Real-triggerer point failed: {type(exc).__name__}: {str(exc)[:1500]}")
        result.targets.append(
            Target(f"N={n:,} confirmed inside a real `airflow triggerer`", "failed", "runs", False)
        )
        return
    seconds = report["window_seconds"]
    polls = max(1, report["polls"])
    rate = report["polls"] / seconds
    intended = n / interval
    cpu_ms = report["cpu_seconds"] * 1000 / polls
    result.tables.append(
        Table(
            f"N = {n:,} inside a real `airflow triggerer` (trigger-runner process, {seconds:.0f} s window)",
            [
                "CPU ms/poll",
                "polls/s achieved / intended",
                "rate",
                "lag p50 ms",
                "lag p99 ms",
                "lag max ms",
                "RSS MiB",
                "sockets max (mean)",
                "runner CPU %",
                "supervisor CPU %",
                "server CPU %",
                "blocked-loop warnings in window",
                "load time s",
            ],
            [
                [
                    fmt(cpu_ms, 3),
                    f"{rate:.1f} / {intended:.1f}",
                    f"{rate / intended * 100:.1f}%",
                    fmt(report["lag_ms"]["p50"], 1),
                    fmt(report["lag_ms"]["p99"], 1),
                    fmt(report["lag_ms"]["max"], 1),
                    fmt(report["rss"] / 2**20, 0),
                    f"{report['sockets_max']} ({report['sockets_mean']:.0f})",
                    fmt(report["cpu_seconds"] / seconds * 100, 0),
                    fmt(report.get("supervisor_cpu_seconds", float("nan")) / seconds * 100, 0),
                    fmt(report["server_cpu_seconds"] / seconds * 100, 0),
                    str(report["blocked_warnings"]),
                    fmt(report["load_seconds"], 0),
                ]
            ],
            note=(
                "CPU, lag, RSS and sockets are the trigger-runner process's own, measured by a probe trigger "
                "on its loop (which also holds the triggerer's comms with its supervisor and the probe); the "
                "supervisor is the parent `airflow triggerer` process (DB, heartbeats)."
            ),
        )
    )
    result.figures["triggerer_cpu_ms_per_poll_n1000"] = cpu_ms
    result.figures["triggerer_polls_per_second_n1000"] = rate
    ok = rate >= 0.95 * intended and report["lag_ms"]["p99"] < 100.0
    result.targets.append(
        Target(
            f"N={n:,} confirmed inside a real `airflow triggerer`",
            f"{rate / intended * 100:.1f}% of intended rate, p99 lag {report['lag_ms']['p99']:.1f} ms, "
            f"{cpu_ms:.3f} ms CPU/poll",
            ">= 95% rate and p99 lag < 100 ms",
            ok,
        )
    )
