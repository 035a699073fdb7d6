"""`make airflow`: a local Airflow (standalone) with the example DAGs, the emulator and the connection.

Everything lives under .demo/standalone-home (GPTPROTO_STANDALONE_HOME to move it); ~/airflow is never
touched. The UI listens on 8080, or a free port when 8080 is taken (GPTPROTO_AIRFLOW_PORT to choose).
Its address is printed once the UI answers. Stop with Ctrl-C.

`airflow standalone` starts its components as a bare `airflow` found on PATH, so the environment it
gets puts this interpreter's bin directory first: `make airflow` works from a shell where the venv
is not activated.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _emulator import running_emulator

ROOT = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("GPTPROTO_STANDALONE_HOME") or ROOT / ".demo" / "standalone-home").resolve()
USER, PASSWORD = "admin", "admin"
# Migrating a fresh database and starting four components takes a minute or two on a small machine.
UI_START_TIMEOUT = 300.0


def free_port(preferred: int) -> int:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", preferred)) != 0:
            return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ui_answers(url: str) -> bool:
    """Whether the api-server serves its health endpoint at ``url`` (the UI's own address)."""
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as reply:
            return bool(reply.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def wait_for_ui(url: str, process: subprocess.Popen[bytes], timeout: float = UI_START_TIMEOUT) -> bool:
    """Wait until the UI answers; False when ``airflow standalone`` exited first or time ran out."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if ui_answers(url):
            return True
        time.sleep(1)
    return False


def main() -> int:
    bin_dir = Path(sys.executable).parent
    airflow = str(bin_dir / "airflow")
    HOME.mkdir(parents=True, exist_ok=True)
    (HOME / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    port = int(os.environ.get("GPTPROTO_AIRFLOW_PORT") or free_port(8080))
    url = f"http://localhost:{port}"
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
            # `airflow standalone` runs each component as a bare `airflow`: this venv's first.
            "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", os.defpath)]),
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags_examples"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(HOME / "passwords.json"),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
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
        print(f"Starting Airflow (home {HOME}) ...", flush=True)
        standalone = subprocess.Popen([airflow, "standalone"], env=env)
        try:
            if not wait_for_ui(url, standalone):
                print(
                    f"\nThe Airflow UI did not answer at {url}; see the output above.",
                    file=sys.stderr,
                    flush=True,
                )
                return stop(standalone) or 1
            print(
                f"\nAirflow UI: {url}  (login {USER} / {PASSWORD})\n"
                f"GPTProto API: {base_url}  (connection gptproto_default; Test button enabled)\n"
                f"{where_logs}"
                "Example DAGs are in dags_examples/. Stop with Ctrl-C.\n",
                flush=True,
            )
            return standalone.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached `airflow standalone` too (same process group): let it stop its components.
            stop(standalone, interrupted=True)
            return 0


def stop(process: subprocess.Popen[bytes], interrupted: bool = False) -> int:
    """Stop ``airflow standalone`` as Ctrl-C does (it then stops its components); its exit code.

    ``interrupted``: Ctrl-C already reached it, so it is given a minute before a second SIGINT.
    """
    steps = [signal.SIGINT, signal.SIGKILL] if interrupted else [signal.SIGINT, signal.SIGINT, signal.SIGKILL]
    if not interrupted:
        process.send_signal(steps.pop(0))
    for sig in steps:
        try:
            return process.wait(60)
        except subprocess.TimeoutExpired:
            process.send_signal(sig)
    return process.wait()


if __name__ == "__main__":
    raise SystemExit(main())
