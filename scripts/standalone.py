"""`make airflow`: a local Airflow (standalone) with the example DAGs, the emulator and the connection.

Everything lives under .demo/standalone-home; ~/airflow is never touched. Stop with Ctrl-C.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _emulator import running_emulator

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".demo" / "standalone-home"
USER, PASSWORD = "admin", "admin"


def free_port(preferred: int) -> int:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", preferred)) != 0:
            return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    airflow = str(Path(sys.executable).parent / "airflow")
    HOME.mkdir(parents=True, exist_ok=True)
    (HOME / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    port = free_port(8080)
    where_logs = ""
    with ExitStack() as stack:
        if os.environ.get("GPTPROTO_API_KEY"):
            base_url = os.environ.get("GPTPROTO_BASE_URL", "https://gptproto.com")
            api_key = os.environ["GPTPROTO_API_KEY"]
        else:
            request_log = HOME / "emulator-requests.log"
            base_url, api_key = stack.enter_context(
                running_emulator(queue_seconds=3, run_seconds=10, log_file=request_log)
            )
            where_logs = f"Emulator request log: {request_log}\n"
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags_examples"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(HOME / "passwords.json"),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW_CONN_GPTPROTO_DEFAULT": json.dumps(
                {"conn_type": "gptproto", "host": base_url, "password": api_key}
            ),
        }
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            [airflow, "pools", "set", "gptproto", "4", "GPTProto API concurrency"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(
            f"\nAirflow UI: http://localhost:{port}  (login {USER} / {PASSWORD})\n"
            f"GPTProto API: {base_url}  (connection gptproto_default; Test button enabled)\n"
            f"{where_logs}"
            "Example DAGs are in dags_examples/. Stop with Ctrl-C.\n",
            flush=True,
        )
        try:
            return subprocess.run([airflow, "standalone"], env=env).returncode
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
