"""Benchmark 1: what polling N remote tasks costs the triggerer, ours against three baselines.

N concurrent pollers run on one asyncio loop in a client process pinned to core 0, as Airflow's
triggerer runs triggers; the minimal JSON server (bench/jsonserver.py) answers on core 1. Variants:

* ``gptproto``: N ``GPTProtoTaskTrigger`` (ours), tasks that stay ``processing``;
* ``http_sensor`` (a): N ``HttpSensorTrigger`` from apache-airflow-providers-http on a 404 endpoint;
* ``aiohttp_new_session`` (b): bare aiohttp, a new ``ClientSession`` for every poll;
* ``aiohttp_shared`` (c): bare aiohttp, one shared keep-alive session, no Airflow code: the floor.

Starts are staggered evenly over one interval (deferrals arrive at different times in real life; a
thundering herd of N simultaneous polls would measure the herd, not the poller). After a warm-up of
two intervals the window opens; in it we count polls at the server, the client's CPU (getrusage),
event-loop lag (a ticker sleeping 50 ms), RSS, and, from outside, the client's socket fds once per
second. ``client`` is the subprocess entry point; ``run()`` drives all points.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from bench import common
from bench.common import BenchResult, Table, Target, fmt, percentile

VARIANTS = {
    "gptproto": "GPTProtoTaskTrigger (ours)",
    "http_sensor": "(a) HttpSensorTrigger, 404 endpoint",
    "aiohttp_new_session": "(b) aiohttp, new session per poll",
    "aiohttp_shared": "(c) aiohttp, one shared session (floor)",
}
# Which server counter is a "poll" for each variant.
POLL_KIND = {"http_sensor": "sensor"}
TASKS_PATH = "/api/v3/contents/generations/tasks"
TICK_SECONDS = 0.05
FULL_NS = (100, 1000, 3000)
FULL_INTERVAL = 5.0
FULL_WINDOW = 60.0
# The floor's connector matches ours (hooks/_aiosession.CONNECTION_LIMIT) so socket counts compare.
SHARED_LIMIT = 64
TARGET_CPU_VS_FLOOR = 1.25
TARGET_CPU_VS_SENSOR = 2.5
TARGET_RATE = 0.95
TARGET_P99_LAG_MS = 100.0


# ================================================================================== client process
def _server_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/_stats", timeout=10) as resp:
        stats: dict[str, Any] = json.load(resp)
    return stats


def _count_lookups() -> list[int]:
    """Count connection look-ups (sync and async): a loop's triggers share them, at most one each."""
    from airflow.sdk.definitions.connection import Connection

    counter = [0]
    original_async = Connection.async_get.__func__  # type: ignore[attr-defined]
    original_sync = Connection.get.__func__  # type: ignore[attr-defined]

    async def async_get(cls: Any, conn_id: str) -> Any:
        counter[0] += 1
        return await original_async(cls, conn_id)

    def get(cls: Any, conn_id: str) -> Any:
        counter[0] += 1
        return original_sync(cls, conn_id)

    Connection.async_get = classmethod(async_get)  # type: ignore[assignment,method-assign]
    Connection.get = classmethod(get)  # type: ignore[assignment,method-assign]
    return counter


def _pollers(
    variant: str, n: int, url: str, interval: float, api_key: str, events: list[Any]
) -> tuple[list[Callable[[], Awaitable[None]]], Callable[[], Awaitable[None]]]:
    """N poll loops for ``variant`` and an async clean-up to run after they are cancelled."""
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}

    async def nothing() -> None:
        return None

    if variant == "gptproto":
        from airflow_provider_gptproto.triggers.gptproto import GPTProtoTaskTrigger

        async def drive_trigger(trigger: Any) -> None:
            async for event in trigger.run():  # a running task never ends: any event is a problem
                events.append(event.payload)
                return

        triggers = [GPTProtoTaskTrigger(f"bench-{i}", poll_interval=interval) for i in range(n)]
        return [functools.partial(drive_trigger, t) for t in triggers], nothing

    if variant == "http_sensor":
        from airflow.providers.http.triggers.http import HttpSensorTrigger

        async def drive_sensor(trigger: Any) -> None:
            async for event in trigger.run():
                events.append(event.payload)
                return

        sensors = [
            HttpSensorTrigger(endpoint=f"sensor/{i}", http_conn_id="http_bench", poke_interval=interval)
            for i in range(n)
        ]
        return [functools.partial(drive_sensor, t) for t in sensors], nothing

    import aiohttp

    if variant == "aiohttp_new_session":

        async def poll_new(task_url: str) -> None:
            while True:
                async with aiohttp.ClientSession() as session, session.get(task_url, headers=headers) as resp:
                    body = await resp.read()
                if resp.status == 200:
                    json.loads(body)
                await asyncio.sleep(interval)

        return [functools.partial(poll_new, f"{url}{TASKS_PATH}/bench-{i}") for i in range(n)], nothing

    if variant == "aiohttp_shared":
        shared: dict[str, aiohttp.ClientSession] = {}

        def session() -> aiohttp.ClientSession:
            if "s" not in shared:
                connector = aiohttp.TCPConnector(limit=SHARED_LIMIT, keepalive_timeout=30.0)
                shared["s"] = aiohttp.ClientSession(connector=connector)
            return shared["s"]

        async def poll_shared(task_url: str) -> None:
            while True:
                async with session().get(task_url, headers=headers) as resp:
                    body = await resp.read()
                if resp.status == 200:
                    json.loads(body)
                await asyncio.sleep(interval)

        async def close() -> None:
            if "s" in shared:
                await shared["s"].close()

        return [functools.partial(poll_shared, f"{url}{TASKS_PATH}/bench-{i}") for i in range(n)], close

    raise ValueError(f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}")


async def _client(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    lookups = _count_lookups() if args.variant in ("gptproto", "http_sensor") else [0]
    events: list[Any] = []
    pollers, close = _pollers(args.variant, args.n, args.url, args.interval, args.api_key, events)
    rss_before = common.rss_bytes()
    state = {"recording": False}
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            started = loop.time()
            await asyncio.sleep(TICK_SECONDS)
            if state["recording"]:
                lags.append(loop.time() - started - TICK_SECONDS)

    crashes: list[str] = []

    async def staggered(delay: float, poller: Callable[[], Awaitable[None]]) -> None:
        await asyncio.sleep(delay)
        try:
            await poller()
        except Exception as exc:  # a poller that dies stops polling: count it, do not hide it
            crashes.append(f"{type(exc).__name__}: {str(exc)[:200]}")

    tick = asyncio.create_task(ticker())
    spread = args.interval / max(1, args.n)
    tasks = [asyncio.create_task(staggered(i * spread, p)) for i, p in enumerate(pollers)]
    await asyncio.sleep(args.warmup)

    before = await asyncio.to_thread(_server_stats, args.url)
    cpu0, wall0, t0 = common.self_cpu_seconds(), time.monotonic(), time.time()
    with common.GcPauses() as gc_pauses:
        state["recording"] = True
        await asyncio.sleep(args.window)
        state["recording"] = False
    cpu1, wall1, t1 = common.self_cpu_seconds(), time.monotonic(), time.time()
    after = await asyncio.to_thread(_server_stats, args.url)
    rss_end = common.rss_bytes()

    for task in [*tasks, tick]:
        task.cancel()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks, tick, return_exceptions=True), 30)
    await close()
    open_shared_sessions = None
    if args.variant == "gptproto":
        from airflow_provider_gptproto.hooks import _aiosession

        open_shared_sessions = _aiosession.open_sessions()

    kind = POLL_KIND.get(args.variant, "task_get")
    return {
        "variant": args.variant,
        "n": args.n,
        "interval": args.interval,
        "window_start": t0,
        "window_end": t1,
        "window_seconds": wall1 - wall0,
        "polls": after["requests"][kind] - before["requests"][kind],
        "server_connections": after["connections"] - before["connections"],
        "client_cpu_seconds": cpu1 - cpu0,
        "server_cpu_seconds": after["cpu_seconds"] - before["cpu_seconds"],
        "lag_ms": {
            "p50": percentile(lags, 50) * 1000,
            "p99": percentile(lags, 99) * 1000,
            "max": max(lags, default=float("nan")) * 1000,
            "samples": len(lags),
        },
        "gc": gc_pauses.report(),
        "rss_before": rss_before,
        "rss_end": rss_end,
        "peak_rss": common.peak_rss_bytes(),
        "lookups": lookups[0],
        "crashes": len(crashes),
        "first_crash": crashes[0] if crashes else None,
        "events": len(events),
        "first_event": events[0] if events else None,
        "open_shared_sessions_after_cleanup": open_shared_sessions,
    }


def client_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench.trigger_polling client")
    parser.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--warmup", type=float, required=True)
    parser.add_argument("--window", type=float, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", default=common.API_KEY)
    args = parser.parse_args(argv)
    result = asyncio.run(_client(args))
    print(json.dumps(result), flush=True)


# ================================================================================== orchestration
def measure_point(variant: str, n: int, interval: float, warmup: float, window: float) -> dict[str, Any]:
    """One (variant, N) point: fresh server on the server core, client on the client core."""
    with common.json_server() as server:
        env = common.client_env(
            AIRFLOW_CONN_GPTPROTO_DEFAULT=common.conn_json(server.url),
            AIRFLOW_CONN_HTTP_BENCH=json.dumps({"conn_type": "http", "host": server.url}),
        )
        args = [
            common.PY,
            "-m",
            "bench.trigger_polling",
            "client",
            f"--variant={variant}",
            f"--n={n}",
            f"--interval={interval}",
            f"--warmup={warmup}",
            f"--window={window}",
            f"--url={server.url}",
        ]
        with common.Child(args, name=f"poll-{variant}-{n}", core=common.CLIENT_CORE, env=env) as client:
            with common.Sampler(client.pid, interval=min(1.0, window / 5)) as sampler:
                out = client.communicate(timeout=warmup + window + 180)
            point: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    samples = sampler.between(point["window_start"] + 0.5, point["window_end"] - 0.5) or sampler.samples
    point["sockets_max"] = max((s.sockets for s in samples), default=0)
    point["sockets_mean"] = sum(s.sockets for s in samples) / max(1, len(samples))
    polls = max(1, point["polls"])
    seconds = point["window_seconds"]
    point["cpu_ms_per_poll"] = point["client_cpu_seconds"] * 1000 / polls
    point["polls_per_second"] = point["polls"] / seconds
    point["intended_per_second"] = n / interval
    point["rate_fraction"] = point["polls_per_second"] / point["intended_per_second"]
    point["client_cpu_percent"] = point["client_cpu_seconds"] / seconds * 100
    point["server_cpu_percent"] = point["server_cpu_seconds"] / seconds * 100
    point["kib_per_poller"] = (point["rss_end"] - point["rss_before"]) / 1024 / n
    return point


def run(
    smoke: bool = False,
    *,
    window: float | None = None,
    ns: tuple[int, ...] | None = None,
    variants: tuple[str, ...] | None = None,
    triggerer: bool = True,
) -> BenchResult:
    """All points (N x variant), then the N = 1,000 point inside a real ``airflow triggerer``."""
    started = time.monotonic()
    interval = 0.5 if smoke else FULL_INTERVAL
    ns = ns or ((20,) if smoke else FULL_NS)
    window = window or (1.5 if smoke else FULL_WINDOW)
    warmup = (1 if smoke else 2) * interval + (0.2 if smoke else 2.0)
    variants = variants or ("aiohttp_shared", "gptproto", "aiohttp_new_session", "http_sensor")
    result = BenchResult(
        "trigger_polling",
        "Benchmark 1: polling cost in the triggerer",
        "smoke" if smoke else "full",
        method=[
            f"N pollers on one asyncio loop (default event loop, as the triggerer) in a client process "
            f"pinned to core {common.CLIENT_CORE}; bench/jsonserver.py pinned to core {common.SERVER_CORE} "
            "answers with the emulator's exact bytes for a running task (the emulator needs ~5 ms CPU per "
            "request, so at 600 polls/s it would be the bottleneck).",
            f"Interval {interval:g} s; starts staggered evenly over one interval; warm-up {warmup:g} s; "
            f"measured window {window:g} s per point; one fresh server and client process per point.",
            "CPU ms per poll = client process CPU (user+sys, getrusage) in the window / polls the server "
            "answered in the window. Loop lag = how late a 50 ms asyncio.sleep ticker wakes (p50/p99). "
            "Sockets = socket fds of the client, sampled from outside once per second. KiB per poller = "
            "(RSS at window end - RSS before the pollers were created) / N.",
            "Connections: AIRFLOW_CONN_* env vars (env secrets backend); look-ups are counted by wrapping "
            "Connection.get/async_get.",
        ],
    )
    own_affinity = os.sched_getaffinity(0)
    if common.can_pin():  # our sampler thread must not steal the client's core
        os.sched_setaffinity(0, {common.SERVER_CORE})
    points: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        for n in ns:
            for variant in variants:
                points[(variant, n)] = measure_point(variant, n, interval, warmup, window)
    finally:
        os.sched_setaffinity(0, own_affinity)

    rows = []
    for n in ns:
        floor = points.get(("aiohttp_shared", n))
        for variant in variants:
            p = points[(variant, n)]
            vs_floor = p["cpu_ms_per_poll"] / floor["cpu_ms_per_poll"] if floor else float("nan")
            rows.append(
                [
                    fmt(n),
                    VARIANTS[variant],
                    fmt(p["cpu_ms_per_poll"], 3),
                    fmt(vs_floor),
                    f"{fmt(p['polls_per_second'], 1)} / {fmt(p['intended_per_second'], 1)}",
                    f"{p['rate_fraction'] * 100:.1f}%",
                    fmt(p["lag_ms"]["p50"], 1),
                    fmt(p["lag_ms"]["p99"], 1),
                    fmt(p["peak_rss"] / 2**20, 0),
                    fmt(p["kib_per_poller"], 1),
                    f"{p['sockets_max']} ({p['sockets_mean']:.0f})",
                    fmt(p["client_cpu_percent"], 0),
                    fmt(p["server_cpu_percent"], 0),
                    fmt(p["lookups"] / n, 4) if variant in ("gptproto", "http_sensor") else "-",
                ]
            )
    result.tables.append(
        Table(
            "Polling cost per point",
            [
                "N",
                "poller",
                "CPU ms/poll",
                "x floor (c)",
                "polls/s achieved / intended",
                "rate",
                "lag p50 ms",
                "lag p99 ms",
                "peak RSS MiB",
                "KiB/poller",
                "sockets max (mean)",
                "client CPU %",
                "server CPU %",
                "conn look-ups / trigger",
            ],
            rows,
        )
    )
    baselines = [v for v in ("http_sensor", "aiohttp_new_session", "aiohttp_shared") if v in variants]
    if "gptproto" in variants and baselines:
        vs_rows = []
        for n in ns:
            ours = points[("gptproto", n)]
            row = [fmt(n)]
            for base in baselines:
                b = points[(base, n)]
                row.append(
                    f"{ours['cpu_ms_per_poll'] / b['cpu_ms_per_poll']:.2f}x CPU, "
                    f"{ours['lag_ms']['p99'] / b['lag_ms']['p99']:.2f}x p99 lag, "
                    f"{ours['rate_fraction'] / b['rate_fraction']:.2f}x rate"
                )
            vs_rows.append(row)
        result.tables.append(
            Table(
                "GPTProtoTaskTrigger relative to each baseline (ours / baseline; CPU, lag: lower is better)",
                ["N", *(VARIANTS[b] for b in baselines)],
                vs_rows,
            )
        )
    for (variant, n), p in points.items():
        if p["crashes"]:
            result.notes.append(
                f"{VARIANTS[variant]} N={n}: {p['crashes']} pollers died (stopped polling); first: "
                f"{p['first_crash']}"
            )
        if p["events"]:
            result.notes.append(
                f"{variant} N={n}: {p['events']} trigger events (unexpected): {p['first_event']}"
            )
        if variant == "gptproto" and p["open_shared_sessions_after_cleanup"]:
            result.notes.append(f"gptproto N={n}: shared sessions left open after clean-up!")
    _judge(result, points, ns)
    if triggerer and not smoke:
        from bench import triggerer_point

        triggerer_point.run_into(result, interval=FULL_INTERVAL, window=window)
    elif triggerer:
        result.notes.append("Smoke mode skips the N = 1,000 point inside a real `airflow triggerer`.")
    result.seconds = time.monotonic() - started
    return result


def _judge(result: BenchResult, points: dict[tuple[str, int], dict[str, Any]], ns: tuple[int, ...]) -> None:
    top = max(ns)
    ours, floor, sensor = (points.get((v, top)) for v in ("gptproto", "aiohttp_shared", "http_sensor"))
    if ours is None:
        return
    result.figures.update(
        {
            f"gptproto_cpu_ms_per_poll_n{top}": ours["cpu_ms_per_poll"],
            f"gptproto_polls_per_second_n{top}": ours["polls_per_second"],
            f"gptproto_lag_p99_ms_n{top}": ours["lag_ms"]["p99"],
            f"gptproto_peak_rss_mib_n{top}": ours["peak_rss"] / 2**20,
            f"gptproto_sockets_max_n{top}": float(ours["sockets_max"]),
        }
    )
    if floor:
        result.figures[f"floor_cpu_ms_per_poll_n{top}"] = floor["cpu_ms_per_poll"]
        r = ours["cpu_ms_per_poll"] / floor["cpu_ms_per_poll"]
        result.targets.append(
            Target(
                f"CPU per poll vs (c) shared aiohttp, N={top:,}",
                f"{ours['cpu_ms_per_poll']:.3f} vs {floor['cpu_ms_per_poll']:.3f} ms = {r:.2f}x",
                f"<= {TARGET_CPU_VS_FLOOR}x",
                r <= TARGET_CPU_VS_FLOOR,
            )
        )
    if sensor:
        result.figures[f"sensor_cpu_ms_per_poll_n{top}"] = sensor["cpu_ms_per_poll"]
        r = sensor["cpu_ms_per_poll"] / ours["cpu_ms_per_poll"]
        result.targets.append(
            Target(
                f"CPU per poll vs (a) HttpSensorTrigger, N={top:,}",
                f"{sensor['cpu_ms_per_poll']:.3f} / {ours['cpu_ms_per_poll']:.3f} ms = {r:.2f}x lower",
                f">= {TARGET_CPU_VS_SENSOR}x lower",
                r >= TARGET_CPU_VS_SENSOR,
            )
        )
    result.targets.append(
        Target(
            f"Poll rate achieved, N={top:,}",
            f"{ours['rate_fraction'] * 100:.1f}% ({ours['polls_per_second']:.1f}/s of "
            f"{ours['intended_per_second']:.1f}/s)",
            f">= {TARGET_RATE * 100:.0f}%",
            ours["rate_fraction"] >= TARGET_RATE,
        )
    )
    result.targets.append(
        Target(
            f"Event-loop lag p99, N={top:,}",
            f"{ours['lag_ms']['p99']:.1f} ms",
            f"< {TARGET_P99_LAG_MS:.0f} ms",
            ours["lag_ms"]["p99"] < TARGET_P99_LAG_MS,
        )
    )
    by_n = {n: points[("gptproto", n)]["sockets_max"] for n in ns if ("gptproto", n) in points}
    result.targets.append(
        Target(
            "Open sockets bounded (max socket fds per N)",
            ", ".join(f"N={n:,}: {s}" for n, s in by_n.items()),
            f"<= {SHARED_LIMIT} (connector limit) at every N",
            all(s <= SHARED_LIMIT for s in by_n.values()),
        )
    )
    result.targets.append(
        Target(
            "Memory per trigger (reported)",
            ", ".join(f"N={n:,}: {points[('gptproto', n)]['kib_per_poller']:.1f} KiB" for n in by_n),
            "reported",
            True,
        )
    )
    lookups = {n: points[("gptproto", n)]["lookups"] for n in by_n}
    result.targets.append(
        Target(
            "Connection look-ups (shared by the triggers of a loop that start within a minute)",
            ", ".join(f"N={n:,}: {v}" for n, v in lookups.items()),
            "at least 1, at most 1 per trigger",
            all(1 <= v <= n for n, v in lookups.items()),
        )
    )


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["client"]:
        client_main(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench.trigger_polling")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--window", type=float, default=None)
    parser.add_argument(
        "--n", type=int, action="append", default=None, help="repeatable; default 100,1000,3000"
    )
    parser.add_argument("--variant", action="append", default=None, choices=sorted(VARIANTS))
    parser.add_argument("--no-triggerer", action="store_true", help="skip the real-triggerer point")
    args = parser.parse_args(argv)
    result = run(
        args.smoke,
        window=args.window,
        ns=tuple(args.n) if args.n else None,
        variants=tuple(args.variant) if args.variant else None,
        triggerer=not args.no_triggerer,
    )
    print(json.dumps(result.to_dict(), indent=2, default=str))


if __name__ == "__main__":
    main()
