"""One real Airflow deployment plus emulators for the process-fault, soak and secret-leak tests.

``ReliabilityEnv`` bundles what tests/reliability/test_process_faults.py, test_soak.py and
test_secrets.py share: an AirflowStack loading tests/reliability/dags, a main emulator, a second
emulator on a fixed port with a ``--state-file`` (so a test can kill it and start another on the same
port), and one long random API key used by every connection, so the secret scan after all runs
covers everything those runs wrote.

Helpers here are event-driven: every wait polls a condition with a deadline, never a bare sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from airflow_provider_gptproto.emulator.harness import (
    EmulatorError,
    EmulatorProcess,
    start_emulator,
    wait_for,
)
from dev.airflow_stack import AirflowStack, command_line, free_ports, session_members

T = TypeVar("T")
REL_DAGS = Path(__file__).resolve().parents[1] / "reliability" / "dags"
# Emulator timings: short, so a normal video takes ~2 s; tests that need longer use prompt markers.
EMULATOR_TIMINGS: dict[str, Any] = {"queue_seconds": 0.5, "run_seconds": 1.0, "render_fps": 2}
# How long a silent triggerer counts as alive; the triggerer-kill test waits this out (default 30 s).
TRIGGERER_HEALTH_THRESHOLD = 8
TASK_HEARTBEAT_TIMEOUT = 30
POOL_SLOTS = 6
PARALLELISM = 6


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll ``predicate`` until it returns something truthy (returned); AssertionError on timeout."""
    result: T = wait_for(predicate, timeout, interval, what, error=AssertionError)
    return result


def sigkill_running_task(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> None:
    """SIGKILL the worker process of a task instance that is running its first try."""
    ti = stack.client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
    assert ti["state"] == "running" and ti["try_number"] == 1, ti
    title = f"airflow worker -- {ti['id']}"
    (pid,) = wait_until(
        lambda: [p for p in session_members([stack.pid("scheduler")]) if command_line(p) == title],
        30,
        "the task process",
    )
    os.kill(pid, signal.SIGKILL)


class RestartableEmulator:
    """An emulator on a fixed loopback port with a state file; it can be killed and started again.

    Every process it ever ran is kept in ``processes`` (their stderr logs are scanned for the key).
    """

    def __init__(self, work_dir: Path, api_key: str, **options: Any) -> None:
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_file = work_dir / "restart-emulator-state.json"
        self.log_file = work_dir / "restart-emulator-requests.jsonl"
        self.api_key = api_key
        self.options = options
        self.processes: list[EmulatorProcess] = []

    @property
    def current(self) -> EmulatorProcess:
        return self.processes[-1]

    def start(self, timeout: float = 60.0) -> EmulatorProcess:
        """Start a new process on the same port; retries briefly if the port is still held."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                emu = start_emulator(
                    api_key=self.api_key,
                    port=self.port,
                    state_file=self.state_file,
                    log_file=self.log_file,
                    **self.options,
                )
                break
            except EmulatorError:  # e.g. the killed process's port not yet free
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.processes.append(emu)
        return emu

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if sig == signal.SIGKILL:
            self.current.kill()
        else:
            self.current.stop()

    def stop(self) -> None:
        for emu in self.processes:
            with contextlib.suppress(Exception):
                emu.stop(timeout=5)


@dataclass
class ReliabilityEnv:
    """What the reliability e2e tests share; built once per test package run."""

    stack: AirflowStack
    emulator: EmulatorProcess
    restart: RestartableEmulator
    api_key: str
    wrong_key: str
    work_dir: Path
    emulator_log_file: Path
    output_dir: Path
    runs: list[tuple[str, str]] = field(default_factory=list)  # every run the tests triggered

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run_id = self.stack.client.trigger(dag_id, conf)
        self.runs.append((dag_id, run_id))
        return run_id

    # ----------------------------------------------------------------------------- REST helpers
    def ti(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        result: dict[str, Any] = self.stack.client.get(path + (f"/{map_index}" if map_index >= 0 else ""))
        return result

    def wait_ti_state(
        self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 120.0
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            ti = self.ti(dag_id, run_id, task_id)
            return ti if ti.get("state") in states else None

        return wait_until(reached, timeout, f"{dag_id}.{task_id} in {sorted(states)}", interval=0.3)

    def state_store(self, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/state-store/{key}"
        entry = self.stack.client.request("GET", path, expect=(200, 404))
        if not isinstance(entry, dict) or "value" not in entry:
            return None
        value = entry["value"]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return json.loads(value)
        return value

    def trigger_kwargs(self, trigger_id: int) -> dict[str, Any]:
        """A trigger row's kwargs, decrypted from the metadata DB (the REST API blanks them)."""
        from cryptography.fernet import Fernet

        uri = f"file:{self.stack.home / 'airflow.db'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            row = db.execute("SELECT kwargs FROM trigger WHERE id = ?", (trigger_id,)).fetchone()
        assert row is not None, f"no trigger row {trigger_id}"
        raw = row[0]
        if not raw.startswith("{"):
            raw = Fernet(self.stack.env["AIRFLOW__CORE__FERNET_KEY"].encode()).decrypt(raw.encode()).decode()
        return _plain_kwargs(json.loads(raw))

    # --------------------------------------------------------------------------- emulator helpers
    def remote_tasks(self, marker: str, emulator: EmulatorProcess | None = None) -> list[dict[str, Any]]:
        """The emulator's tasks whose prompt contains ``marker`` (each test uses a unique one)."""
        emu = emulator or self.emulator
        return [t for t in emu.tasks() if marker.lower() in str(t.get("prompt") or "").lower()]

    # ----------------------------------------------------------------------------- process helpers
    def task_processes(self, ti_id: str) -> list[int]:
        """Pids of the task runner of a TI: the task SDK titles it ``airflow worker -- <ti id>``."""
        title = f"airflow worker -- {ti_id}"
        return [pid for pid in session_members([self.stack.pid("scheduler")]) if command_line(pid) == title]

    @staticmethod
    def supervisor_of(pid: int) -> int | None:
        """The parent: for a task process, the LocalExecutor worker that supervises it."""
        with contextlib.suppress(OSError, IndexError, ValueError):
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        return None

    @staticmethod
    def command_line(pid: int) -> str:
        return command_line(pid)


def _plain_kwargs(data: Any) -> Any:
    """Undo Airflow's serde envelope (``{"__classname__", "__data__"}``) around plain values."""
    if isinstance(data, dict):
        if "__data__" in data and ("__classname__" in data or "__type" in data):
            return _plain_kwargs(data["__data__"])
        if "__var" in data and "__type" in data:
            return _plain_kwargs(data["__var"])
        return {k: _plain_kwargs(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain_kwargs(v) for v in data]
    return data


@contextlib.contextmanager
def reliability_env(work_dir: Path, api_key: str, wrong_key: str) -> Iterator[ReliabilityEnv]:
    """Start the emulators and the stack; stop everything (and check nothing is left) on exit."""
    log_file = work_dir / "emulator-requests.jsonl"
    output_dir = work_dir / "videos"
    output_dir.mkdir(parents=True, exist_ok=True)
    emulator = start_emulator(api_key=api_key, log_file=log_file, fault_seed=7, **EMULATOR_TIMINGS)
    restart = RestartableEmulator(work_dir, api_key, **EMULATOR_TIMINGS)
    stack: AirflowStack | None = None
    try:
        restart.start()

        def conn(url: str, key: str) -> str:
            return json.dumps({"conn_type": "gptproto", "host": url, "password": key})

        stack = AirflowStack(
            work_dir / "airflow-home",
            dags_folder=REL_DAGS,
            extra_env={
                "AIRFLOW_CONN_GPTPROTO_DEFAULT": conn(emulator.url, api_key),
                "AIRFLOW_CONN_GPTPROTO_RESTART": conn(restart.url, api_key),
                "AIRFLOW_CONN_GPTPROTO_WRONG_KEY": conn(emulator.url, wrong_key),
            },
            wait_for_dags=("rel_worker_kill", "rel_soak", "rel_failures"),
            pools={"gptproto": POOL_SLOTS},
            parallelism=PARALLELISM,
            config={
                "triggerer": {"triggerer_health_check_threshold": TRIGGERER_HEALTH_THRESHOLD},
                # A worker killed with its supervisor is noticed by its missing heartbeat (default
                # 300 s); supervisors heartbeat every second, so 30 s stays far from false alarms.
                "scheduler": {
                    "task_instance_heartbeat_timeout": TASK_HEARTBEAT_TIMEOUT,
                    "task_instance_heartbeat_timeout_detection_interval": 5,
                },
            },
        )
        stack.start()
        yield ReliabilityEnv(stack, emulator, restart, api_key, wrong_key, work_dir, log_file, output_dir)
    finally:
        leftovers = stack.stop() if stack is not None else []
        restart.stop()
        emulator.stop()
        for emu in (emulator, *restart.processes):  # their stderr logs are temp files
            emu.log_path.unlink(missing_ok=True)
        assert not leftovers, f"Airflow processes survived the stack: {leftovers}"
