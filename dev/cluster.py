"""A local distributed Airflow: Postgres, Redis, CeleryExecutor, two workers, two triggerers, the emulator.

One implementation serves ``make cluster`` (scripts/cluster.py, detached, data under ``.cluster/``)
and tests/cluster (started once per module, stopped at its end). Everything is a real process of its
own: Debian's ``postgres`` and ``redis-server`` on free loopback ports with private data directories,
``airflow api-server``, ``scheduler``, ``dag-processor``, ``celery worker`` x2, ``triggerer`` x2 (all
through :class:`~dev.airflow_stack.AirflowStack`), and the GPTProto emulator.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_provider_gptproto.emulator.harness import MODULE, EmulatorAdmin, emulator_args, wait_for
from dev.airflow_stack import (
    EXAMPLE_DAGS,
    JOB_TYPES,
    AirflowStack,
    StackError,
    _is_zombie,
    command_line,
    component_kind,
    free_ports,
    session_members,
)
from dev.services import PostgresServer, RedisServer, ServiceError, _port_open

# How long a silent triggerer still counts as alive before its triggers move (Airflow default 30 s).
HEALTH_CHECK_THRESHOLD = 30


class Emulator(EmulatorAdmin):
    """The emulator as a process in its own session on a known port (it may outlive this process)."""

    def __init__(self, log_path: Path, api_key: str, port: int | None = None, **options: Any) -> None:
        self.port = port or free_ports(1)[0]
        self.api_key = api_key
        self.log_path = log_path
        log = log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if k != "GPTPROTO_EMULATOR_API_KEY"}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", MODULE, *emulator_args(api_key=api_key, port=self.port, **options)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + 30
        while not _port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ServiceError(f"emulator did not start: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        super().__init__(f"http://127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        with contextlib.suppress(Exception):
            self.close()


class Cluster:
    """Start and stop the whole deployment; ``state()`` is what ``make cluster-stop`` needs.

    :param root: where data, logs and AIRFLOW_HOME live (``.cluster/`` for ``make cluster``).
    :param dags_folder: DAGs to load (default: the repo's ``dags_examples``).
    :param triggerers: number of triggerers (default 2).
    :param workers: number of Celery workers (default 2).
    :param worker_concurrency: task slots per worker (default 8).
    :param health_check_threshold: ``[triggerer] triggerer_health_check_threshold`` in seconds (default 30).
    :param emulator_options: options of the emulator (``queue_seconds``, ``run_seconds``, ...).
    :param config: more Airflow settings, ``{"section": {"option": value}}``.
    :param pools: pools to create, name -> slots (default: ``gptproto`` with 8 slots).
    :param admin_password: the UI login's password (default: random).
    :param wait_for_dags: DAG ids to wait for until parsed.
    :param extra_env: added to every Airflow component's environment (more connections, settings).
    """

    def __init__(
        self,
        root: Path,
        *,
        dags_folder: Path = EXAMPLE_DAGS,
        triggerers: int = 2,
        workers: int = 2,
        worker_concurrency: int = 8,
        health_check_threshold: int = HEALTH_CHECK_THRESHOLD,
        emulator_options: Mapping[str, Any] | None = None,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        pools: Mapping[str, int] | None = None,
        admin_password: str | None = None,
        wait_for_dags: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.api_key = "sk-cluster-" + secrets.token_hex(16)
        self.postgres = PostgresServer(self.root / "postgres")
        self.redis = RedisServer(self.root / "redis")
        self.emulator: Emulator | None = None
        self._emulator_options = dict(emulator_options or {"queue_seconds": 2, "run_seconds": 5})
        self.triggerers = [f"triggerer-{i}" for i in range(1, triggerers + 1)]
        self.workers = [f"celery-worker-{i}" for i in range(1, workers + 1)]
        self.health_check_threshold = health_check_threshold
        settings: dict[str, dict[str, Any]] = {
            "core": {"executor": "CeleryExecutor"},
            "database": {"sql_alchemy_conn": self.postgres.url},
            "celery": {
                "broker_url": self.redis.url,
                "result_backend": "db+" + self.postgres.url,
                "worker_concurrency": worker_concurrency,
            },
            "triggerer": {"triggerer_health_check_threshold": health_check_threshold},
            "scheduler": {
                # A worker lost with its task is noticed by the task's missing heartbeat (default 300 s).
                "task_instance_heartbeat_timeout": 30,
                "task_instance_heartbeat_timeout_detection_interval": 5,
            },
        }
        for section, options in (config or {}).items():
            settings.setdefault(section, {}).update(options)
        self.stack = AirflowStack(
            self.root / "airflow-home",
            dags_folder=dags_folder,
            components=("api-server", "scheduler", "dag-processor", *self.workers, *self.triggerers),
            pools=dict(pools or {"gptproto": 8}),
            admin_password=admin_password,
            parallelism=64,
            config=settings,
            wait_for_dags=wait_for_dags,
            extra_env=extra_env,
            startup_timeout=300.0,
        )

    @property
    def client(self) -> Any:
        return self.stack.client

    def start(self) -> Cluster:
        """Postgres, Redis, the emulator, then every Airflow component; stops what started on failure."""
        try:
            self.postgres.start()
            self.redis.start()
            self.emulator = Emulator(self.root / "emulator.log", self.api_key, **self._emulator_options)
            self.stack.env["AIRFLOW_CONN_GPTPROTO_DEFAULT"] = json.dumps(
                {"conn_type": "gptproto", "host": self.emulator.url, "password": self.api_key}
            )
            self.stack.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[int]:
        """Airflow first (it talks to the others until the end), then the emulator, Redis, Postgres."""
        left = self.stack.stop()
        if self.emulator is not None:
            self.emulator.stop()
        self.redis.stop()
        self.postgres.stop()
        return left

    def revive(self) -> list[str]:
        """Start again every Airflow component that exited (what systemd or Kubernetes would do)."""
        dead = [name for name in self.stack.components if not self.stack.is_running(name)]
        for name in dead:
            self.stack.start(name)
        return dead

    def wait_heartbeating(
        self, components: Sequence[str] | None = None, *, fresh: float = 15.0, timeout: float = 120.0
    ) -> None:
        """Wait until each Job component (scheduler, dag-processor, triggerers; default: all) has
        heartbeaten its own Job row within the last ``fresh`` seconds."""
        names = [n for n in (components or self.stack.components) if component_kind(n) in JOB_TYPES]

        def late() -> list[str]:
            running = {
                kind: {job["id"]: job for job in self.client.jobs(kind, state="running")}
                for kind in {JOB_TYPES[component_kind(n)] for n in names}
            }
            stale = []
            for name in names:
                job_id = self.stack.job_id(name)
                job = running[JOB_TYPES[component_kind(name)]].get(job_id) or {}
                beat = job.get("latest_heartbeat")
                if not beat or time.time() - datetime.fromisoformat(beat).timestamp() > fresh:
                    stale.append(f"{name} (job {job_id})")
            return stale

        try:
            wait_for(lambda: not late(), timeout, 1.0, "every Job component heartbeating", error=StackError)
        except StackError as exc:
            raise StackError(f"{exc}; late: {late()}\n{self.stack.diagnostics()}") from None

    def ensure_healthy(self) -> list[str]:
        """Revive exited components and wait until every Job component heartbeats; returns the revived."""
        revived = self.revive()
        self.wait_heartbeating()
        return revived

    @contextlib.contextmanager
    def supervised(self, interval: float = 1.0) -> Iterator[list[str]]:
        """Revive exited components every ``interval`` seconds while the block runs, as a supervisor
        (systemd ``Restart=always``, a Kubernetes Deployment) would; yields the growing list of them.

        A one-off :meth:`revive` misses a component that exits a moment later, e.g. a scheduler
        that only notices a database outage on its next query.
        """
        revived: list[str] = []
        done = threading.Event()

        def watch() -> None:
            while not done.wait(interval):
                try:
                    revived.extend(self.revive())
                except Exception as exc:  # an api-server still starting; try again next round
                    revived.append(f"<revive failed: {exc}>")

        thread = threading.Thread(target=watch, name="cluster-supervisor", daemon=True)
        thread.start()
        try:
            yield revived
        finally:
            done.set()
            thread.join()
            revived.extend(self.revive())

    def worker_running(self, ti_id: str) -> str | None:
        """The Celery worker whose session runs the task process of this task instance, if any."""
        title = f"airflow worker -- {ti_id}"
        for name in self.workers:
            if not self.stack.is_running(name):
                continue
            if any(command_line(pid) == title for pid in session_members([self.stack.pid(name)])):
                return name
        return None

    # ------------------------------------------------------------------------------ what runs where
    def triggerer_of(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str | None:
        """The triggerer component whose Job holds this deferred task instance's trigger, if any."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        ti = self.client.get(path + (f"/{map_index}" if map_index >= 0 else ""))
        job = ti.get("triggerer_job") or {}
        return self.stack.component_of_job(int(job["id"])) if job.get("id") else None

    def state(self) -> dict[str, Any]:
        """PIDs and sessions of everything started, the URLs and the login (for the state file)."""
        if self.emulator is None:
            raise StackError("the cluster was not started")
        return {
            "ui": self.stack.base_url,
            "login": [self.stack.admin_user, self.stack.admin_password],
            "emulator": self.emulator.url,
            "sessions": self.stack.sessions(),
            "pids": {
                "postgres": self.postgres.pid,
                "redis": self.redis.pid,
                "emulator": self.emulator.process.pid,
            },
            "postgres": self.postgres.url,
            "redis": self.redis.url,
        }


def stop_by_state(state: Mapping[str, Any]) -> list[str]:
    """Stop what a detached cluster's state file lists, by PID; returns what could not be stopped."""
    from dev.airflow_stack import stop_sessions

    problems = [f"airflow pid {pid} survived" for pid in stop_sessions(state.get("sessions", {}).values())]
    for name, sig in (("emulator", signal.SIGTERM), ("redis", signal.SIGTERM), ("postgres", signal.SIGINT)):
        pid = state.get("pids", {}).get(name)
        if not pid:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        if _alive(pid):
            problems.append(f"{name} pid {pid} survived")
    return problems


def _alive(pid: int) -> bool:
    return not _is_zombie(pid)  # gone, or exited and not reaped yet
