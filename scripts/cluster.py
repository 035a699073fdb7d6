"""`make cluster` / `make cluster-stop`: a local distributed Airflow, from Debian packages and PyPI only.

Postgres and Redis as this script's own servers (data under .cluster/, free non-default ports),
Airflow with CeleryExecutor: api-server, scheduler, dag-processor, two Celery workers, two triggerers;
the emulator and the gptproto_default connection; the example DAGs. The processes keep running after
this script returns; .cluster/state.json lists their PIDs, and `make cluster-stop` stops them by PID
(GPTPROTO_CLUSTER_DIR moves .cluster/).
The implementation is dev/cluster.py, which the cluster tests start too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dev.cluster import Cluster, stop_by_state  # noqa: E402

CLUSTER_DIR = Path(os.environ.get("GPTPROTO_CLUSTER_DIR") or ROOT / ".cluster").resolve()
STATE = CLUSTER_DIR / "state.json"
USER, PASSWORD = "admin", "admin"


def start() -> int:
    if STATE.exists():
        print(f"A cluster is already running (see {STATE}); `make cluster-stop` first.", file=sys.stderr)
        return 1
    # Every start is a fresh deployment: no stale DB, queue or logs from a previous one.
    shutil.rmtree(CLUSTER_DIR, ignore_errors=True)
    print("Starting Postgres, Redis, the emulator and Airflow (CeleryExecutor) ...", flush=True)
    cluster = Cluster(CLUSTER_DIR, admin_password=PASSWORD).start()
    state = cluster.state()
    STATE.write_text(json.dumps(state, indent=2))
    cluster.stack.detach()
    print(
        f"\nAirflow UI: {state['ui']}  (login {USER} / {PASSWORD})\n"
        f"Executor: CeleryExecutor, 2 workers, 2 triggerers\n"
        f"Postgres {state['postgres']}, Redis {state['redis']}\n"
        f"GPTProto API (emulator): {state['emulator']}  (connection gptproto_default)\n"
        f"Logs: {CLUSTER_DIR}/airflow-home/component-logs/. Stop with `make cluster-stop`.\n",
        flush=True,
    )
    return 0


def stop() -> int:
    if not STATE.exists():
        print("No cluster is running (no .cluster/state.json).")
        return 0
    problems = stop_by_state(json.loads(STATE.read_text()))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    STATE.unlink()
    print("Cluster stopped.")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("start", "stop"))
    args = parser.parse_args()
    return start() if args.command == "start" else stop()


if __name__ == "__main__":
    raise SystemExit(main())
