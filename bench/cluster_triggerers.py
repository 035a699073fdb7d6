"""Benchmark 6: waits on the two triggerers of the cluster (`make cluster`), and triggerer failover.

The cluster of dev/cluster.py (Postgres, Redis, CeleryExecutor, two Celery workers, two
triggerers) runs bench/dags: N tasks born deferred on GPTProtoTaskTriggers (``start_from_trigger``,
no worker run) polling the minimal JSON server every ``interval`` seconds. Measured:

* the poll rate achieved over a window, against N / interval;
* how the N waits are split over the two triggerers (from the REST API: each deferred task
  instance's triggerer job);
* p99 loop lag per triggerer: a probe trigger on the triggerer's own loop (bench/probe.py); the
  probe DAG is run until each triggerer has run one (Airflow picks the triggerer);
* failover: SIGKILL the triggerer with the most waits; failover time is from the kill to the first
  poll of a moved wait on the survivor (a moved trigger polls as soon as it starts: the first line of
  its trigger log there), and recovery is when the server's poll rate over one interval is back at
  95 % of N / interval. Airflow moves the waits once the dead triggerer's heartbeat is
  older than ``[triggerer] triggerer_health_check_threshold`` (30 s, Airflow's default, here).
"""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.common import BenchResult, Table, Target, fmt
from bench.triggerer_point import _rate, _task_gets, _triggers_started, probe_env

POLLER_DAG = "bench_triggerer_pollers"
PROBE_DAG = "bench_triggerer_probe"
DAGS_FOLDER = common.REPO_ROOT / "bench" / "dags"
CONN_ID = "gptproto_bench"
METHOD = [
    "The `make cluster` deployment (Postgres, Redis, CeleryExecutor, two Celery workers, two triggerers) "
    "runs N tasks born deferred on GPTProtoTaskTriggers polling the minimal JSON server every interval.",
    "Poll rate: the server's GET counter over the window, against N / interval.",
    "Split: each deferred task instance's triggerer job, from the REST API.",
    "Loop lag per triggerer: benchmark 1's probe trigger on the triggerer's own loop; the probe DAG runs "
    "until each triggerer has run one (Airflow picks the triggerer).",
    "Failover: SIGKILL the triggerer holding more waits; the first poll of a moved wait on the survivor "
    "is the first line of its trigger log there; recovery is the poll rate back at 95% over one interval.",
]
THRESHOLD = 30  # Airflow's default triggerer_health_check_threshold (full runs)
SMOKE_THRESHOLD = 10


def _split(cluster: Any) -> dict[str, int]:
    """Deferred pollers per triggerer component, from each task instance's triggerer job."""
    client = cluster.client
    run = client.dag_runs(POLLER_DAG)[-1]["dag_run_id"]
    counts: dict[str, int] = {name: 0 for name in cluster.triggerers}
    for ti in client.task_instances(POLLER_DAG, run):
        job = ti.get("triggerer_job") or {}
        name = cluster.stack.component_of_job(int(job["id"])) if job.get("id") else None
        if ti.get("state") == "deferred" and name:
            counts[name] += 1
    return counts


def _probe_owner(cluster: Any, pid: int) -> str | None:
    from dev.airflow_stack import session_members

    for name in cluster.triggerers:
        if cluster.stack.is_running(name) and pid in session_members([cluster.stack.pid(name)]):
            return name
    return None


def _probes(cluster: Any, result_dir: Path, window: float, rounds: int = 4) -> dict[str, dict[str, Any]]:
    """Run the probe DAG until each triggerer has reported (at most ``rounds`` times)."""
    reports: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        before = set(result_dir.glob("probe-*.json"))
        run = cluster.client.trigger(PROBE_DAG)
        cluster.client.wait_for_run(PROBE_DAG, run, timeout=window + 300, poll=2.0)
        for path in set(result_dir.glob("probe-*.json")) - before:
            report = json.loads(path.read_text())
            owner = _probe_owner(cluster, int(report["pid"]))
            if owner and owner not in reports:
                reports[owner] = report
        if len(reports) == len(cluster.triggerers):
            break
    return reports


def _trigger_starts(cluster: Any, job_id: int, after: float) -> list[float]:
    """When Job ``job_id`` started each poller's trigger (its trigger log's first line), after ``after``."""
    import datetime as dt

    base = cluster.stack.home / "logs" / f"dag_id={POLLER_DAG}"
    starts = []
    for path in base.glob(f"run_id=*/task_id=poll/*/*.trigger.{job_id}.log"):
        with path.open(errors="replace") as handle:
            first = json.loads(handle.readline() or "{}")
        stamp = first.get("timestamp")
        if stamp:
            at = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            if at > after:
                starts.append(at)
    return sorted(starts)


def _failover(
    cluster: Any, url: str, split: dict[str, int], n: int, interval: float, threshold: int, patience: float
) -> dict[str, float]:
    """SIGKILL the busier triggerer; time until its waits start (and poll) on the survivor.

    A moved trigger polls as soon as it starts, so the first line of its trigger log on the survivor
    is its first poll there. The server's poll rate, over one poll interval, says when all are back.
    """
    victim = max(split, key=lambda name: split[name])
    (survivor,) = [name for name in split if name != victim]
    survivor_job = cluster.stack.job_id(survivor)
    samples: list[tuple[float, int]] = []
    killed_at = time.time()
    cluster.stack.kill(victim, signal.SIGKILL)
    recovered = float("nan")
    deadline = killed_at + threshold + patience
    while time.time() < deadline:
        count, at = _task_gets(url)
        samples.append((at, count))
        recent = [s for s in samples if s[0] >= at - interval]
        if at - killed_at > interval and recent[-1][0] - recent[0][0] >= 0.9 * interval:
            rate = (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])
            if rate >= 0.95 * n / interval:
                recovered = at - killed_at
                break
        time.sleep(0.25)
    starts = _trigger_starts(cluster, survivor_job, killed_at) if survivor_job else []
    cluster.stack.start(victim)
    return {
        "moved": float(split[victim]),
        "started": float(len(starts)),
        "first_poll_s": starts[0] - killed_at if starts else float("nan"),
        "last_poll_s": starts[-1] - killed_at if starts else float("nan"),
        "recovered_s": recovered,
    }


def measure(
    n: int, interval: float, window: float, threshold: int, probe_rounds: int, kind: str = "gptproto"
) -> dict[str, Any]:
    """The cluster's figures; ``kind="idle"``: N idle DateTimeTriggers instead, lag and split only."""
    from dev.cluster import Cluster
    from dev.services import open_for_postgres

    started = time.monotonic()
    with common.json_server(core=None) as server, common.scratch_dir("bench-cluster-") as scratch:
        open_for_postgres(scratch)
        env = probe_env(server.url, n, interval, scratch / "probe-{pid}.json", window, kind)
        with Cluster(
            scratch / "cluster",
            dags_folder=DAGS_FOLDER,
            wait_for_dags=(POLLER_DAG, PROBE_DAG),
            extra_env=env,
            health_check_threshold=threshold,
            config={"triggerer": {"capacity": n + 10}, "core": {"max_map_length": max(1024, n + 10)}},
        ) as cluster:
            ready = time.monotonic() - started
            load_started = time.monotonic()
            cluster.client.trigger(POLLER_DAG)
            intended = n / interval
            if kind == "idle":
                logs = cluster.stack.home / "logs"
                common.wait_until(lambda: _triggers_started(logs) >= n, 600, interval=5.0, what="idle waits")
                split = _split(cluster)
                return {"n": n, "split": split, "probes": _probes(cluster, scratch, window, probe_rounds)}
            common.wait_until(
                lambda: _rate(server.url, interval) >= 0.95 * intended,
                600,
                interval=0.0,
                what=f"{n} waits polling at 95% of {intended:.0f}/s",
            )
            load_seconds = time.monotonic() - load_started
            rate = _rate(server.url, window)
            split = _split(cluster)
            probes = _probes(cluster, scratch, window, probe_rounds)
            failover = _failover(cluster, server.url, split, n, interval, threshold, 60 if n < 100 else 240)
            leftovers = cluster.stop()  # here, so that a survivor is reported (the with-exit repeats it)
    return {
        "n": n,
        "interval": interval,
        "window": window,
        "rate": rate,
        "intended": intended,
        "split": split,
        "probes": probes,
        "failover": failover,
        "threshold": threshold,
        "ready_seconds": ready,
        "load_seconds": load_seconds,
        "leftovers": leftovers,
    }


def _lags(probe: dict[str, Any] | None) -> str:
    if not probe:
        return "not probed"
    lag = probe["lag_ms"]
    return f"{fmt(lag['p50'], 1)} / {fmt(lag['p99'], 1)} / {fmt(lag['max'], 1)}"


def run(smoke: bool = False) -> BenchResult:
    n, interval, window = (40, 1.0, 5.0) if smoke else (2000, 5.0, 60.0)
    threshold = SMOKE_THRESHOLD if smoke else THRESHOLD
    started = time.monotonic()
    report = measure(n, interval, window, threshold, 1 if smoke else 4)
    # Airflow's own share of the lag: the same cluster with idle triggers (full runs only).
    idle = {} if smoke else measure(n, interval, window, threshold, 4, kind="idle")["probes"]
    result = BenchResult(
        "cluster_triggerers",
        "Benchmark 6: waits on the cluster's two triggerers, and triggerer failover",
        "smoke" if smoke else "full",
        method=METHOD,
    )
    split = report["split"]
    total = max(1, sum(split.values()))
    evenness = min(split.values()) / max(1, max(split.values()))
    rows = []
    for name in sorted(split):
        probe = report["probes"].get(name)
        lag = probe["lag_ms"] if probe else None
        rows.append(
            [
                name,
                f"{split[name]:,} ({split[name] / total * 100:.0f}%)",
                fmt(lag["p50"], 1) if lag else "not probed",
                fmt(lag["p99"], 1) if lag else "not probed",
                fmt(lag["max"], 1) if lag else "not probed",
                fmt(probe["cpu_seconds"] / probe["window_seconds"] * 100, 0) if probe else "-",
                _lags(idle.get(name)),
            ]
        )
    result.tables.append(
        Table(
            f"N = {n:,} waits at {interval:.0f} s over two triggerers (CeleryExecutor, Postgres, Redis)",
            [
                "triggerer",
                "waits",
                "lag p50 ms",
                "lag p99 ms",
                "lag max ms",
                "runner CPU %",
                "Airflow alone: lag p50 / p99 / max ms",
            ],
            rows,
            note=(
                f"Poll rate over {window:.0f} s: {report['rate']:.1f}/s of {report['intended']:.1f}/s "
                f"intended ({report['rate'] / report['intended'] * 100:.1f}%). Cluster ready in "
                f"{report['ready_seconds']:.0f} s; the waits reached 95% of the rate "
                f"{report['load_seconds']:.0f} s after the DAG run started."
            ),
        )
    )
    if idle:
        result.notes.append(
            f"Airflow alone: the same cluster started afresh with the {n:,} tasks born deferred on idle "
            "DateTimeTriggers (2099) instead, no polling: its probes show the triggerer's own lag."
        )
    fo = report["failover"]
    result.tables.append(
        Table(
            "Failover: SIGKILL the triggerer holding the most waits",
            [
                "waits moved",
                "restarted on the survivor",
                "threshold s",
                "first poll on the survivor s",
                "last moved wait polling s",
                "rate back to 95% s",
            ],
            [
                [
                    f"{int(fo['moved']):,}",
                    f"{int(fo['started']):,}",
                    str(threshold),
                    fmt(fo["first_poll_s"], 1),
                    fmt(fo["last_poll_s"], 1),
                    fmt(fo["recovered_s"], 1),
                ]
            ],
            note=(
                "Seconds after the SIGKILL. The dead triggerer's last heartbeat predates the kill by up to "
                "`job_heartbeat_sec`, so a move can come slightly before the threshold has passed."
            ),
        )
    )
    result.figures["cluster_polls_per_second"] = report["rate"]
    result.figures["cluster_split_evenness"] = max(evenness, 1e-9)
    if not math.isnan(fo["first_poll_s"]):
        result.figures["cluster_failover_seconds"] = fo["first_poll_s"]
    p99s = [p["lag_ms"]["p99"] for p in report["probes"].values()]
    result.targets.append(
        Target(
            f"{n:,} waits at {interval:.0f} s over two triggerers",
            f"{report['rate'] / report['intended'] * 100:.1f}% of intended rate, split "
            f"{'/'.join(str(v) for v in split.values())}, p99 lag "
            + (", ".join(f"{v:.1f}" for v in p99s) or "-")
            + " ms",
            ">= 95% rate, p99 lag < 100 ms on each probed triggerer",
            None if smoke else report["rate"] >= 0.95 * report["intended"] and all(v < 100 for v in p99s),
        )
    )
    result.targets.append(
        Target(
            "Failover: kill a triggerer -> first poll of a moved wait on the survivor",
            f"{fo['first_poll_s']:.1f} s (rate back at 95% after {fo['recovered_s']:.1f} s)",
            f"<= threshold ({threshold} s) + one poll interval ({interval:.0f} s) + 10 s loop slack",
            None if smoke else fo["first_poll_s"] <= threshold + interval + 10,
        )
    )
    if report["leftovers"]:
        result.notes.append(f"Processes that survived the cluster: {report['leftovers']}")
    result.seconds = time.monotonic() - started
    return result
