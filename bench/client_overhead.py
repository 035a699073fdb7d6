"""Benchmark 4: what the hook adds to ``create_task`` + ``get_task`` over plain ``requests``.

A client process pinned to core 0 alternates blocks of pairs through ``GPTProtoHook`` (request
validation, retry policy, error mapping, reply parsing into GenerationTask) and blocks of the same
two HTTP requests with plain ``requests`` on one Session (same JSON bytes, same headers, status
check and ``.json()``), against a server pinned to core 1. The minimal JSON server is the strict
case (server time ~0.05 ms, so client overhead dominates); the emulator is the realistic one.
Figure = median over blocks of wall time per pair (and process CPU per pair).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench import common
from bench.common import BenchResult, Table, Target, fmt, median

TASKS_PATH = "/api/v3/contents/generations/tasks"
TARGET_RATIO = 1.2
PROMPT = "a benchmark fox crossing a frozen river"


# ================================================================================ client process
def client_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench.client_overhead client")
    parser.add_argument("--url", required=True)
    parser.add_argument("--pairs", type=int, required=True, help="pairs per block")
    parser.add_argument("--blocks", type=int, required=True, help="blocks per client (alternating)")
    args = parser.parse_args(argv)

    import requests

    from airflow_provider_gptproto.hooks._settings import USER_AGENT
    from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
    from airflow_provider_gptproto.models import VideoGenerationRequest

    hook = GPTProtoHook()
    plain = requests.Session()
    tasks_url = args.url + TASKS_PATH
    payload = VideoGenerationRequest.build(prompt=PROMPT).to_payload()
    headers = {
        "Authorization": f"Bearer {common.API_KEY}",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    post_headers = {**headers, "Content-Type": "application/json"}

    def hook_pair() -> None:
        task = hook.create_task({"prompt": PROMPT})
        hook.get_task(task.task_id)

    def plain_pair() -> None:
        created = plain.post(tasks_url, data=json.dumps(payload), headers=post_headers, timeout=(10, 60))
        created.raise_for_status()
        task_id = created.json()["data"]["task_id"]
        got = plain.get(f"{tasks_url}/{task_id}", headers=headers, timeout=(10, 60))
        got.raise_for_status()
        got.json()

    clients = {"hook": hook_pair, "plain": plain_pair}
    for pair in clients.values():  # warm-up: connections, lazy imports, caches
        for _ in range(20):
            pair()
    samples: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in clients}
    for block in range(args.blocks):
        order = ("hook", "plain") if block % 2 == 0 else ("plain", "hook")
        for name in order:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            for _ in range(args.pairs):
                clients[name]()
            samples[name]["wall"].append((time.perf_counter() - wall0) / args.pairs)
            samples[name]["cpu"].append((time.process_time() - cpu0) / args.pairs)
    print(json.dumps(samples), flush=True)


# ================================================================================ orchestration
def measure(server: str, pairs: int, blocks: int) -> dict[str, Any]:
    factory = common.json_server if server == "jsonserver" else common.emulator
    with factory() as srv:
        env = common.client_env(AIRFLOW_CONN_GPTPROTO_DEFAULT=common.conn_json(srv.url))
        args = [
            common.PY,
            "-m",
            "bench.client_overhead",
            "client",
            f"--url={srv.url}",
            f"--pairs={pairs}",
            f"--blocks={blocks}",
        ]
        with common.Child(args, name=f"overhead-{server}", core=common.CLIENT_CORE, env=env) as child:
            out = child.communicate(timeout=600)
    samples: dict[str, dict[str, list[float]]] = json.loads(out.strip().splitlines()[-1])
    hook_ms = median(samples["hook"]["wall"]) * 1000
    plain_ms = median(samples["plain"]["wall"]) * 1000
    return {
        "server": server,
        "pairs": pairs * blocks,
        "hook_ms": hook_ms,
        "plain_ms": plain_ms,
        "ratio": hook_ms / plain_ms,
        "hook_cpu_ms": median(samples["hook"]["cpu"]) * 1000,
        "plain_cpu_ms": median(samples["plain"]["cpu"]) * 1000,
    }


def run(smoke: bool = False) -> BenchResult:
    started = time.monotonic()
    plan = [("jsonserver", 20, 2)] if smoke else [("jsonserver", 200, 10), ("emulator", 40, 6)]
    result = BenchResult(
        "client_overhead",
        "Benchmark 4: client overhead of create_task + get_task",
        "smoke" if smoke else "full",
        method=[
            "One client process pinned to core 0, server pinned to core 1; blocks of pairs alternate "
            "between the hook and plain requests (order flipped every block); 20 warm-up pairs each.",
            "Plain = requests.Session().post(json bytes) + .get(), status check and .json(); hook = "
            "create_task({'prompt': ...}) + get_task(id) with default retries. Median over blocks.",
        ],
    )
    points = [measure(server, pairs, blocks) for server, pairs, blocks in plan]
    result.tables.append(
        Table(
            "Wall time and CPU per create + get pair",
            ["server", "pairs each", "hook ms", "plain ms", "hook / plain", "hook CPU ms", "plain CPU ms"],
            [
                [
                    "minimal JSON server" if p["server"] == "jsonserver" else "emulator",
                    fmt(p["pairs"]),
                    fmt(p["hook_ms"], 3),
                    fmt(p["plain_ms"], 3),
                    fmt(p["ratio"], 2),
                    fmt(p["hook_cpu_ms"], 3),
                    fmt(p["plain_cpu_ms"], 3),
                ]
                for p in points
            ],
        )
    )
    for p in points:
        result.figures[f"hook_ms_per_pair_{p['server']}"] = p["hook_ms"]
        result.figures[f"plain_ms_per_pair_{p['server']}"] = p["plain_ms"]
    strict = points[0]
    result.targets.append(
        Target(
            "Hook vs plain requests (minimal server: the strict case)",
            f"{strict['hook_ms']:.3f} vs {strict['plain_ms']:.3f} ms = {strict['ratio']:.2f}x",
            f"<= {TARGET_RATIO}x",
            strict["ratio"] <= TARGET_RATIO if not smoke else None,
        )
    )
    if len(points) > 1:
        real = points[1]
        result.targets.append(
            Target(
                "Hook vs plain requests (emulator)",
                f"{real['hook_ms']:.3f} vs {real['plain_ms']:.3f} ms = {real['ratio']:.2f}x",
                f"<= {TARGET_RATIO}x",
                real["ratio"] <= TARGET_RATIO if not smoke else None,
            )
        )
    result.seconds = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> None:
    common.run_cli("bench.client_overhead", run, client_main, argv)


if __name__ == "__main__":
    main()
