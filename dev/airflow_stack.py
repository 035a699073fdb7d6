"""Real Airflow 3 processes on loopback, for end-to-end tests of the provider.

``AirflowStack`` builds a throw-away AIRFLOW_HOME (SQLite, LocalExecutor, SimpleAuthManager with a
known admin password, free ports, the repo's ``dags_examples``), migrates it, and starts
``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` as separate processes, each in its
own session so that it (and every task process it forks) can be killed as a unit. Components can be
started, killed and restarted one by one, which later tests use to crash the triggerer mid-run.

Nothing may outlive the test run, so there are three layers of cleanup: ``stop()`` (fixture
finalizer / ``with`` block), an ``atexit`` hook, and a watchdog process that kills every session of
the stack when the Python process that started it dies without cleaning up (SIGKILL, hard crash).

``AirflowClient`` is the small REST client the tests drive the stack with (public ``/api/v2``).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.metadata
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DAGS = REPO_ROOT / "dags_examples"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# Every kind of component; several of one kind are named "<kind>-<n>" (e.g. "triggerer-2").
KINDS = (*COMPONENTS, "celery-worker")
# The Job row each long-running component heartbeats (the api-server and Celery workers have none).
JOB_TYPES = {"scheduler": "SchedulerJob", "dag-processor": "DagProcessorJob", "triggerer": "TriggererJob"}


def component_kind(name: str) -> str:
    """``"triggerer-2"`` -> ``"triggerer"``; a plain kind is its own kind."""
    if name in KINDS:
        return name
    kind, _, index = name.rpartition("-")
    if kind in KINDS and index.isdigit():
        return kind
    raise ValueError(f"unknown component {name!r}; choose from {KINDS} (several: '<kind>-<n>')")


TERMINAL_RUN_STATES = frozenset({"success", "failed"})
GET_ATTEMPTS = 6
STATE_MISMATCH = "but the task instance's state attribute is queued"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"

_LIVE_STACKS: list[AirflowStack] = []

# Runs in its own session with only the standard library: when the test process disappears without
# calling stop(), it kills every process of every session listed in the file.
_WATCHDOG = r"""
import json, os, signal, sys, time
parent, path = int(sys.argv[1]), sys.argv[2]
def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
while alive(parent) and os.getppid() == parent:
    time.sleep(1.0)
def members(sids):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if os.getsid(int(entry)) in sids:
                    found.append(int(entry))
            except OSError:
                pass
    return found
try:
    with open(path) as handle:
        sids = set(json.load(handle))
except (OSError, ValueError):
    sids = set()
for sig, pause in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
    for pid in members(sids):
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    end = time.monotonic() + pause
    while time.monotonic() < end and members(sids):
        time.sleep(0.2)
"""


class StackError(RuntimeError):
    """The stack could not be started, or a component misbehaved."""


class AirflowRunError(AssertionError):
    """A DAG run ended in the wrong state or did not finish in time; the message says why."""


# --------------------------------------------------------------------------------------- processes
def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports the OS considers free right now (all held open together, so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # gone
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def session_members(sids: Iterable[int], *, include_zombies: bool = False) -> list[int]:
    """Pids whose session id is one of ``sids``: a component and everything it spawned.

    Sessions survive reparenting (task processes whose supervisor died still carry the sid), which
    a parent/child walk would miss; Airflow only ``setpgid``s its task processes, never ``setsid``.
    """
    wanted = set(sids)
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            if os.getsid(pid) in wanted and (include_zombies or not _is_zombie(pid)):
                found.append(pid)
        except OSError:
            continue
    return found


def command_line(pid: int) -> str:
    """A process's (possibly retitled) command line, or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _signal_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def _wait_gone(sids: set[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        left = session_members(sids)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def _db_template() -> Path:
    """Where the migrated empty DB of this Python environment's Airflow version is cached."""
    try:
        version = importlib.metadata.version("apache-airflow-core")
    except importlib.metadata.PackageNotFoundError:
        version = importlib.metadata.version("apache-airflow")
    key = hashlib.sha256(f"{sys.prefix}|{version}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"airflow-stack-db-{version}-{key}.sqlite"


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 200 * lines))
            text = handle.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Component:
    name: str
    process: subprocess.Popen[bytes]
    log_handle: Any
    started_at: float

    @property
    def sid(self) -> int:
        return self.process.pid  # start_new_session: the leader's pid is the session id


# ------------------------------------------------------------------------------------------- stack
class AirflowStack:
    """A throw-away Airflow 3 deployment made of real processes; use as a context manager.

    :param home: AIRFLOW_HOME to create (a fresh temporary directory when None; removed on stop).
    :param extra_env: added to every component's environment, e.g. ``AIRFLOW_CONN_GPTPROTO_DEFAULT``.
    :param components: what ``start()`` launches; others can be started later with ``start(name)``.
    :param wait_for_dags: DAG ids ``start()`` waits for until the dag-processor has serialized them.
    :param dags_paused: value of ``dags_are_paused_at_creation``.
    :param pools: pools to create, name -> slots.
    :param config: extra ``{"section": {"option": value}}`` settings (as AIRFLOW__SECTION__OPTION).
    :param serve_logs: run the scheduler's and triggerer's log servers (on free ports). Off by default:
        all processes share one disk, the API reads finished and deferred logs from the files, and two
        fewer servers make start-up faster on small machines.

    Executor and metadata DB come from ``config`` (``core.executor``, ``database.sql_alchemy_conn``,
    ``celery.*``): a non-SQLite DB is migrated in place. ``components`` may name several components of
    one kind (``"triggerer-1", "triggerer-2", "celery-worker-1"``); each gets its own session, log and,
    for job-running kinds, its own Job row (``job_id(name)``).
    """

    def __init__(
        self,
        home: Path | str | None = None,
        *,
        dags_folder: Path | str = EXAMPLE_DAGS,
        extra_env: Mapping[str, str] | None = None,
        components: Sequence[str] = COMPONENTS,
        wait_for_dags: Sequence[str] = (),
        dags_paused: bool = False,
        pools: Mapping[str, int] | None = None,
        admin_user: str = "admin",
        admin_password: str | None = None,
        parallelism: int = 8,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        serve_logs: bool = False,
        startup_timeout: float = 120.0,
    ) -> None:
        for name in components:
            component_kind(name)  # raises for an unknown name
        self._own_home = home is None
        self.home = Path(home or tempfile.mkdtemp(prefix="gptproto-e2e-airflow-")).resolve()
        self.dags_folder = Path(dags_folder).resolve()
        self.components = tuple(components)
        self.wait_for_dags = tuple(wait_for_dags)
        self.pools = dict(pools or {})
        self.admin_user = admin_user
        self.admin_password = admin_password or secrets.token_urlsafe(12)
        self.serve_logs = serve_logs
        self.startup_timeout = startup_timeout
        self.api_port, self.worker_log_port, self.trigger_log_port = free_ports(3)
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.timings: dict[str, float] = {}
        self._procs: dict[str, _Component] = {}
        self._job_ids: dict[str, int] = {}  # component -> the Job row its current process runs
        self._retired_sids: set[int] = set()  # sessions of killed components, rechecked on stop()
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._migrated = False
        self._pools_done = False
        self._stopped = False
        self._lock = threading.RLock()
        self.logs_dir = self.home / "component-logs"
        self.env = self._build_env(extra_env or {}, dags_paused, parallelism, config or {})
        self.client = AirflowClient(
            self.base_url, admin_user, self.admin_password, diagnostics=self.diagnostics
        )
        _register(self)

    # ----------------------------------------------------------------------------- configuration
    @property
    def airflow_bin(self) -> str:
        candidate = Path(sys.executable).parent / "airflow"
        return str(candidate) if candidate.exists() else (shutil.which("airflow") or "airflow")

    def _build_env(
        self,
        extra_env: Mapping[str, str],
        dags_paused: bool,
        parallelism: int,
        config: Mapping[str, Mapping[str, Any]],
    ) -> dict[str, str]:
        """The environment of every component: nothing Airflow-related leaks in from the test process."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "_AIRFLOW", "PYTEST_")) and k != "GPTPROTO_EMULATOR_API_KEY"
        }
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env["PYTHONUNBUFFERED"] = "1"
        env["SCARF_ANALYTICS"] = "false"
        env["DO_NOT_TRACK"] = "1"
        from cryptography.fernet import Fernet  # an Airflow dependency

        settings: dict[str, dict[str, Any]] = {
            "core": {
                "dags_folder": self.dags_folder,
                "load_examples": False,
                "executor": "LocalExecutor",
                "parallelism": parallelism,
                "auth_manager": SIMPLE_AUTH_MANAGER,
                "simple_auth_manager_users": f"{self.admin_user}:admin",
                "simple_auth_manager_all_admins": False,
                "simple_auth_manager_passwords_file": self.home / "passwords.json",
                "fernet_key": Fernet.generate_key().decode(),
                "dags_are_paused_at_creation": dags_paused,
                "test_connection": "Enabled",
                "execution_api_server_url": f"{self.base_url}/execution/",
                "unit_test_mode": False,
            },
            "database": {"sql_alchemy_conn": f"sqlite:///{self.home / 'airflow.db'}"},
            "api": {
                "host": "127.0.0.1",
                "port": self.api_port,
                "base_url": self.base_url,
                "workers": 1,
                "secret_key": secrets.token_hex(16),
            },
            "api_auth": {"jwt_secret": secrets.token_hex(32)},
            "logging": {
                "base_log_folder": self.home / "logs",
                "worker_log_server_port": self.worker_log_port,
                "trigger_log_server_port": self.trigger_log_port,
            },
            "scheduler": {
                # A short idle sleep gets queued work started quickly; heartbeats stay cheap.
                "scheduler_idle_sleep_time": 0.5,
                "scheduler_heartbeat_sec": 2,
                "job_heartbeat_sec": 2,
                "parsing_cleanup_interval": 10,
                "task_queued_timeout_check_interval": 15,
            },
            "dag_processor": {
                "refresh_interval": 5,
                "min_file_process_interval": 30,
                "parsing_processes": 2,
                "print_stats_interval": 600,
            },
            "triggerer": {"job_heartbeat_sec": 2},
            # The task supervisor notices its child's exit only when its select() times out, which is
            # this interval (default 5 s). After a defer that lag lets the stale "success" event of the
            # deferring phase arrive after a fast trigger already requeued the TI, and the scheduler
            # then fails the TI (core race, apache/airflow#71580). 1 s keeps deferral turnarounds short.
            "workers": {"min_heartbeat_interval": 1},
        }
        for section, options in config.items():
            settings.setdefault(section, {}).update(options)
        for section, options in settings.items():
            for option, value in options.items():
                text = str(value) if not isinstance(value, bool) else ("True" if value else "False")
                env[f"AIRFLOW__{section.upper()}__{option.upper()}"] = text
        env["AIRFLOW_HOME"] = str(self.home)
        env.update(extra_env)
        return env

    # ------------------------------------------------------------------------------------ lifecycle
    def __enter__(self) -> AirflowStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def log_path(self, component: str) -> Path:
        """stdout+stderr of a component (appended to across restarts)."""
        return self.logs_dir / f"{component}.log"

    def prepare(self) -> None:
        """Create AIRFLOW_HOME and a migrated metadata DB (once).

        Migrating an empty SQLite DB costs a CLI start plus the migration (~3 s here), so a migrated
        copy is kept per Airflow installation and copied on later runs. A fresh DB holds nothing
        home-specific or encrypted, so the copy is equivalent. ``AIRFLOW_STACK_NO_DB_CACHE=1`` opts out.
        """
        if self._migrated:
            return
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({self.admin_user: self.admin_password}))
        # Present before any process starts, so four components never race to write the default
        # file; every setting comes from the environment.
        (self.home / "airflow.cfg").write_text("# AirflowStack: configured through AIRFLOW__* variables\n")
        started = time.monotonic()
        db, template = self.home / "airflow.db", _db_template()
        use_cache = not os.environ.get("AIRFLOW_STACK_NO_DB_CACHE")
        if not self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite"):
            self._run_cli("db", "migrate", timeout=600)
        elif use_cache and template.is_file():
            shutil.copyfile(template, db)
        else:
            self._run_cli("db", "migrate")
            if use_cache:
                partial = template.with_name(f"{template.name}.{os.getpid()}.tmp")
                shutil.copyfile(db, partial)
                partial.replace(template)  # atomic: concurrent sessions never see half a file
        if self.pools and "api-server" not in self.components:
            for name, slots in self.pools.items():
                self._run_cli("pools", "set", name, str(slots), "created by AirflowStack")
            self._pools_done = True
        self.timings["migrate"] = time.monotonic() - started
        self._migrated = True

    def _run_cli(self, *args: str, timeout: float = 120.0) -> str:
        result = subprocess.run(
            [self.airflow_bin, *args],
            env=self.env,
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
        if result.returncode != 0:
            raise StackError(
                f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}"
            )
        return result.stdout

    def start(self, component: str | None = None, *, wait: bool = True) -> None:
        """Start every configured component (and wait until the stack is usable), or just one.

        With ``wait``, a single component counts as started when the api-server answers / a new Job
        row of its type is running; the whole stack additionally waits for ``wait_for_dags``.
        """
        if self._stopped:
            raise StackError("this stack was stopped; create a new one")
        self.prepare()
        self._ensure_watchdog()
        if component is not None:
            before = self._latest_job_id(component) if wait else None
            self._spawn(component)
            if wait:
                self._wait_component(component, before, time.monotonic() + self.startup_timeout)
                if component == "api-server":
                    self._ensure_pools()
            return
        started = time.monotonic()
        deadline = started + self.startup_timeout
        # Several components of one job kind start one after the other, so that each Job row is known
        # to belong to one process (the REST API names jobs by host, which they all share).
        later = [name for name in self.components if self._kind_count(name) > 1 and name in self._job_kinds()]
        for name in self.components:
            if name not in later:
                self._spawn(name)
        if "api-server" in self.components:
            self._wait_api(deadline)
            self.timings["api_ready"] = time.monotonic() - started
            self._ensure_pools()
            for name in later:
                before = self._latest_job_id(name)
                self._spawn(name)
                self._wait_component(name, before, deadline)
            if self.wait_for_dags:
                self.client.wait_for_dags(self.wait_for_dags, timeout=max(1.0, deadline - time.monotonic()))
                self.timings["dags_parsed"] = time.monotonic() - started
            for name in self.components:
                if name in self._job_kinds() and name not in later:
                    self._wait_component(name, None, deadline)
        else:
            for name in later:
                self._spawn(name)
        self.timings["components_ready"] = time.monotonic() - started
        self.timings["startup_total"] = self.timings["components_ready"] + self.timings.get("migrate", 0.0)

    def _job_kinds(self) -> set[str]:
        return {name for name in self.components if component_kind(name) in JOB_TYPES}

    def _kind_count(self, name: str) -> int:
        kind = component_kind(name)
        return sum(1 for other in self.components if component_kind(other) == kind)

    def job_id(self, component: str) -> int | None:
        """The Job row the component's current process heartbeats (known once it was waited for)."""
        return self._job_ids.get(component)

    def component_of_job(self, job_id: int) -> str | None:
        """Which running component runs Job ``job_id`` (e.g. the triggerer holding a trigger)."""
        return next((name for name, jid in self._job_ids.items() if jid == job_id), None)

    def _ensure_pools(self) -> None:
        if not self._pools_done:
            for name, slots in self.pools.items():
                self.client.set_pool(name, slots)
            self._pools_done = True

    def _command(self, component: str) -> list[str]:
        kind = component_kind(component)
        if kind == "celery-worker":
            # Each worker its own Celery node name; the log server is off (no shared port to fight over).
            return [
                self.airflow_bin,
                "celery",
                "worker",
                "--celery-hostname",
                f"{component}@%h",
                "--skip-serve-logs",
            ]
        args = [self.airflow_bin, kind]
        if kind in ("scheduler", "triggerer") and not self.serve_logs:
            args.append("--skip-serve-logs")
        return args

    def _spawn(self, component: str) -> None:
        component_kind(component)  # raises for an unknown name
        with self._lock:
            if self.is_running(component):
                raise StackError(f"{component} is already running (pid {self._procs[component].process.pid})")
            if component in self._procs:  # exited on its own: its children may still be around
                self._retired_sids.add(self._procs[component].sid)
                with contextlib.suppress(OSError):
                    self._procs[component].log_handle.close()
            log = self.log_path(component).open("ab")
            log.write(f"\n===== {component} starting at {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self._job_ids.pop(component, None)
            process = subprocess.Popen(
                self._command(component),
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._procs[component] = _Component(component, process, log, time.monotonic())
            _register(self)
            self._write_sessions()

    def is_running(self, component: str) -> bool:
        proc = self._procs.get(component)
        return proc is not None and proc.process.poll() is None

    def pid(self, component: str) -> int:
        return self._procs[component].process.pid

    def _check_alive(self, component: str) -> None:
        proc = self._procs.get(component)
        if proc is not None and proc.process.poll() is not None:
            raise StackError(
                f"{component} exited with code {proc.process.returncode} during start-up; log tail:\n"
                f"{_tail(self.log_path(component), 60)}"
            )

    def _wait_api(self, deadline: float) -> None:
        while True:
            self._check_alive("api-server")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise StackError(f"api-server not ready in time\n{self.diagnostics()}")
            time.sleep(0.2)

    def _latest_job_id(self, component: str) -> int:
        kind = component_kind(component)
        if kind not in JOB_TYPES or not self.is_running("api-server"):
            return 0
        jobs = self.client.jobs(JOB_TYPES[kind])
        return max((int(job["id"]) for job in jobs), default=0)

    def _wait_component(self, component: str, after_job_id: int | None, deadline: float) -> None:
        """Wait for a running Job row newer than ``after_job_id`` (or for the api-server to answer)."""
        if component == "api-server":
            self._wait_api(deadline)
            return
        kind = component_kind(component)
        if kind not in JOB_TYPES or not self.is_running("api-server"):
            return  # nothing to ask; the caller only wanted the process started
        while True:
            self._check_alive(component)
            jobs = self.client.jobs(JOB_TYPES[kind], state="running")
            newer = [int(job["id"]) for job in jobs if int(job["id"]) > (after_job_id or 0)]
            if newer:
                if after_job_id is not None or self._kind_count(component) == 1:  # the newest is ours
                    self._job_ids[component] = max(newer)
                return
            if time.monotonic() > deadline:
                raise StackError(f"{component} did not start its job in time\n{self.diagnostics()}")
            time.sleep(0.3)

    def send_signal(self, component: str, sig: int) -> None:
        """Deliver ``sig`` to the component's main process only (e.g. SIGUSR2); does not wait."""
        self._procs[component].process.send_signal(sig)

    def signal_session(self, component: str, sig: int) -> list[int]:
        """Deliver ``sig`` to every process of the component (e.g. SIGSTOP/SIGCONT); returns the pids."""
        pids = session_members({self._procs[component].sid})
        _signal_pids(pids, sig)
        return pids

    def sessions(self) -> dict[str, int]:
        """Session id of every running component (what a later ``stop_sessions`` needs)."""
        return {name: proc.sid for name, proc in self._procs.items()}

    def detach(self) -> None:
        """Leave the components running after this process exits (``make cluster``): no watchdog,
        no atexit stop. Stop them later with :func:`stop_sessions` on :meth:`sessions`."""
        with self._lock:
            if self._watchdog is not None:
                with contextlib.suppress(ProcessLookupError):
                    self._watchdog.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._watchdog.wait(5)
                self._watchdog = None
            for proc in self._procs.values():
                with contextlib.suppress(OSError):
                    proc.log_handle.close()
            self._stopped = True
            _unregister(self)

    def kill(self, component: str, sig: int = signal.SIGTERM, *, timeout: float = 30.0) -> int | None:
        """Stop one component and make sure nothing of it is left; returns the main exit code.

        SIGTERM (or any catchable signal) goes to the main process, like an orchestrator's stop, and
        the component gets ``timeout`` seconds to shut down cleanly. SIGKILL hits the whole session at
        once, like a crashed machine: no cleanup code runs anywhere. Leftovers are SIGKILLed.
        """
        with self._lock:
            proc = self._procs.pop(component, None)
            self._job_ids.pop(component, None)
            if proc is None:
                return None
            sids = {proc.sid}
            if sig == signal.SIGKILL:
                _signal_pids(session_members(sids), signal.SIGKILL)
            else:
                with contextlib.suppress(ProcessLookupError):
                    proc.process.send_signal(sig)
            try:
                proc.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_pids(session_members(sids), signal.SIGKILL)
                proc.process.wait(10)
            # Children get a moment to follow their parent out, then are killed.
            left = _wait_gone(sids, 3.0 if sig != signal.SIGKILL else 0.5)
            _signal_pids(left, signal.SIGKILL)
            self._retired_sids.add(proc.sid)
            with contextlib.suppress(OSError):
                proc.log_handle.write(
                    f"\n===== {component} stopped by signal {sig} at {time.strftime('%H:%M:%S')} "
                    f"(exit {proc.process.returncode}) =====\n".encode()
                )
                proc.log_handle.close()
            return proc.process.returncode

    def restart(self, component: str, sig: int = signal.SIGTERM, *, wait: bool = True) -> None:
        """Kill (with ``sig``) and start one component again."""
        self.kill(component, sig)
        self.start(component, wait=wait)

    def stop(self, grace: float = 8.0) -> list[int]:
        """Stop everything (SIGTERM, then SIGKILL after ``grace``); returns pids that survived (none).

        Safe to call more than once and from atexit; never raises for an already dead process.
        """
        with self._lock:
            self._stopped = True
            procs = list(self._procs.values())
            self._procs.clear()
            # Remembered first: a stop() interrupted by Ctrl-C is finished by the atexit hook.
            self._retired_sids |= {p.sid for p in procs}
            sids = set(self._retired_sids)
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    proc.process.send_signal(signal.SIGTERM)
            left = _wait_gone(sids, grace) if sids else []
            _signal_pids(left, signal.SIGKILL)
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.process.wait(10)
                with contextlib.suppress(OSError):
                    proc.log_handle.close()
            left = _wait_gone(sids, 5.0) if sids else []
            if self._watchdog is not None and not left:  # else it stays armed for our exit
                with contextlib.suppress(ProcessLookupError):
                    self._watchdog.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._watchdog.wait(5)
                self._watchdog = None
            self.client.close()
            _unregister(self)
            if self._own_home and not left and not os.environ.get("AIRFLOW_STACK_KEEP_HOME"):
                shutil.rmtree(self.home, ignore_errors=True)
            return left

    def leftover_pids(self) -> list[int]:
        """Live processes of any session this stack ever started (empty after stop(), or a bug)."""
        sids = {p.sid for p in self._procs.values()} | self._retired_sids
        return session_members(sids)

    # ------------------------------------------------------------------------------------- watchdog
    def _ensure_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.poll() is None:
            return
        self._write_sessions()
        self._watchdog = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(os.getpid()), str(self._sessions_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def _sessions_file(self) -> Path:
        return self.home / "sessions.json"

    def _write_sessions(self) -> None:
        sids = sorted({p.sid for p in self._procs.values()} | self._retired_sids)
        tmp = self._sessions_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(sids))
        tmp.replace(self._sessions_file)

    # ---------------------------------------------------------------------------------- diagnostics
    def log_tail(self, component: str, lines: int = 40) -> str:
        return _tail(self.log_path(component), lines)

    def diagnostics(self, lines: int = 40) -> str:
        """Process states and the tail of every component's log, for failure messages."""
        parts = []
        for name in dict.fromkeys([*self.components, *self._procs]):
            if not self.log_path(name).exists():
                continue
            proc = self._procs.get(name)
            status = (
                "not running"
                if proc is None
                else ("running" if proc.process.poll() is None else f"exited {proc.process.returncode}")
            )
            parts.append(f"----- {name} ({status}), last {lines} lines -----\n{self.log_tail(name, lines)}")
        with contextlib.suppress(OSError):
            if STATE_MISMATCH in self.log_path("scheduler").read_text(errors="replace"):
                parts.append(
                    "HINT: the scheduler failed a TI on a stale executor event after a deferral "
                    f"({STATE_MISMATCH!r}): Airflow core race apache/airflow#71580, not the task's fault."
                )
        return "\n".join(parts)


def stop_sessions(sids: Iterable[int], grace: float = 10.0) -> list[int]:
    """SIGTERM every process of these sessions, SIGKILL what is left after ``grace``; returns survivors."""
    wanted = set(sids)
    _signal_pids(session_members(wanted), signal.SIGCONT)  # a stopped process cannot act on SIGTERM
    _signal_pids(session_members(wanted), signal.SIGTERM)
    _signal_pids(_wait_gone(wanted, grace), signal.SIGKILL)
    return _wait_gone(wanted, 5.0)


def _register(stack: AirflowStack) -> None:
    if stack not in _LIVE_STACKS:
        _LIVE_STACKS.append(stack)


def _unregister(stack: AirflowStack) -> None:
    with contextlib.suppress(ValueError):
        _LIVE_STACKS.remove(stack)


@atexit.register
def stop_all_stacks() -> None:
    """Last line of defence inside the interpreter (the watchdog covers hard deaths)."""
    for stack in list(_LIVE_STACKS):
        with contextlib.suppress(Exception):
            stack.stop(grace=3.0)


# ------------------------------------------------------------------------------------------ client
@dataclass
class RunOutcome:
    """A finished (or abandoned) DAG run, its task instances, and every TI state seen while polling."""

    dag_id: str
    run_id: str
    run: dict[str, Any]
    task_instances: list[dict[str, Any]]
    observed_states: dict[tuple[str, int], list[str]] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return str(self.run.get("state"))

    def ti(self, task_id: str, map_index: int = -1) -> dict[str, Any]:
        for ti in self.task_instances:
            if ti["task_id"] == task_id and ti.get("map_index", -1) == map_index:
                return ti
        raise KeyError(f"{self.dag_id}/{self.run_id}: no task instance {task_id}[{map_index}]")

    def tis(self, task_id: str) -> list[dict[str, Any]]:
        """All instances of a (possibly mapped) task, by map index."""
        return sorted(
            (ti for ti in self.task_instances if ti["task_id"] == task_id),
            key=lambda ti: ti.get("map_index", -1),
        )


class AirflowClient:
    """Minimal client for Airflow's public REST API, authenticated with a SimpleAuthManager JWT."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 30.0,
        diagnostics: Callable[[], str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self._diagnostics = diagnostics
        self._token: str | None = None
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    # ------------------------------------------------------------------------------------ transport
    def token(self) -> str:
        """A JWT from ``POST /auth/token`` (SimpleAuthManager), cached until a 401."""
        if self._token is None:
            resp = self._session.post(
                f"{self.base_url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=self.timeout,
            )
            if resp.status_code not in (200, 201):
                raise StackError(f"POST /auth/token -> {resp.status_code}: {resp.text[:500]}")
            self._token = resp.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, *, expect: Sequence[int] = (200,), **kwargs: Any) -> Any:
        """Call ``/api/v2`` + path (or an absolute path starting with ``/``); JSON result or text."""
        url = self.base_url + (path if path.startswith(("/api/", "/auth/", "/ui/")) else "/api/v2" + path)
        extra_headers = kwargs.pop("headers", {})
        for attempt in range(1, GET_ATTEMPTS + 1):
            headers = {"Authorization": f"Bearer {self.token()}", **extra_headers}
            resp = self._session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
            if resp.status_code == 401 and attempt == 1:
                self._token = None
                continue
            # Airflow 3.3.2 answers 500 on asset-event listings while a run they created has no
            # start_date yet (AssetEventResponse.created_dagruns.start_date is required); reads retry.
            if resp.status_code >= 500 and method == "GET" and attempt < GET_ATTEMPTS:
                time.sleep(0.5 * attempt)
                continue
            break
        if resp.status_code not in expect:
            raise StackError(f"{method} {url} -> {resp.status_code}: {resp.text[:1000]}")
        if "json" in resp.headers.get("content-type", ""):
            return resp.json()
        return resp.text

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def _paged(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.get(path, limit=100, offset=len(items), **params)
            items.extend(page[key])
            if not page[key] or len(items) >= page.get("total_entries", 0):
                return items

    # ------------------------------------------------------------------------------------ resources
    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/monitor/health")
        return result

    def jobs(self, job_type: str, state: str | None = None) -> list[dict[str, Any]]:
        """Job rows of one type (SchedulerJob, TriggererJob, DagProcessorJob), newest first."""
        params: dict[str, Any] = {"job_type": job_type, "order_by": "-id"}
        if state:
            params["job_state"] = state
        return self._paged("/jobs", "jobs", **params)

    def set_pool(self, name: str, slots: int, description: str = "", include_deferred: bool = False) -> None:
        body = {
            "name": name,
            "slots": slots,
            "description": description,
            "include_deferred": include_deferred,
        }
        existing = self.request("GET", f"/pools/{name}", expect=(200, 404))
        if isinstance(existing, dict) and existing.get("name") == name:
            self.request("PATCH", f"/pools/{name}", json=body)
        else:
            self.request("POST", "/pools", json=body, expect=(200, 201))

    def import_errors(self) -> list[dict[str, Any]]:
        return self._paged("/importErrors", "import_errors")

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        result = self.request("GET", f"/dags/{dag_id}", expect=(200, 404))
        return result if isinstance(result, dict) and result.get("dag_id") == dag_id else None

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 120.0) -> None:
        """Poll until every DAG is serialized; fail fast with the import error if a file is broken."""
        pending = set(dag_ids)
        deadline = time.monotonic() + timeout
        while pending:
            pending = {dag_id for dag_id in pending if self.dag(dag_id) is None}
            if not pending:
                return
            errors = self.import_errors()
            if errors:
                text = "\n".join(f"{e.get('filename')}: {e.get('stack_trace')}" for e in errors)
                raise StackError(f"DAG import errors while waiting for {sorted(pending)}:\n{text}")
            if time.monotonic() > deadline:
                raise StackError(f"DAGs not parsed in time: {sorted(pending)}\n{self._diag()}")
            time.sleep(0.3)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def unpause(self, dag_id: str) -> None:
        self.set_paused(dag_id, False)

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        """Create a manual run; returns its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        run = self.request("POST", f"/dags/{dag_id}/dagRuns", json=body, expect=(200, 201))
        return str(run["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        return result

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self._paged(f"/dags/{dag_id}/dagRuns", "dag_runs")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run, mapped ones included (one per map index)."""
        return self._paged(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int | None = None, map_index: int = -1
    ) -> str:
        """The full log text of one try (default: the latest), with the trigger's part if it deferred."""
        if try_number is None:
            path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
            ti = self.get(path + (f"/{map_index}" if map_index >= 0 else ""))
            try_number = int(ti["try_number"]) or 1
        data = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true", "map_index": map_index},
            headers={"Accept": "application/json"},
        )
        content = data.get("content", []) if isinstance(data, dict) else data
        if isinstance(content, str):
            return content
        return "\n".join(_format_log_entry(entry) for entry in content)

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        entry = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}", map_index=map_index
        )
        value = entry["value"]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return json.loads(value)
        return value

    def asset(self, name: str) -> dict[str, Any]:
        for asset in self._paged("/assets", "assets", name_pattern=name):
            if asset["name"] == name:
                return asset
        raise StackError(f"asset {name!r} not found")

    def asset_events(self, asset_name: str, **filters: Any) -> list[dict[str, Any]]:
        """Events of one asset (filters: source_dag_id, source_run_id, source_task_id, ...)."""
        asset_id = self.asset(asset_name)["id"]
        return self._paged("/assets/events", "asset_events", asset_id=asset_id, **filters)

    def queued_asset_events(self, asset_name: str) -> list[dict[str, Any]]:
        """Consumer DAGs that have an event of this asset queued but no run for it yet."""
        asset_id = self.asset(asset_name)["id"]
        queued: list[dict[str, Any]] = self.get(f"/assets/{asset_id}/queuedEvents")["queued_events"]
        return queued

    def upstream_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The asset events that triggered (were consumed by) an asset-scheduled run."""
        events: list[dict[str, Any]] = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")[
            "asset_events"
        ]
        return events

    def test_connection(self, connection: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/connections/test", json=dict(connection))
        return result

    # ------------------------------------------------------------------------------------- waiting
    def wait_for_runs(
        self,
        runs: Sequence[tuple[str, str]],
        *,
        timeout: float = 180.0,
        poll: float = 1.0,
        expect: str | None = "success",
    ) -> dict[tuple[str, str], RunOutcome]:
        """Poll several runs at once until all are terminal, recording every TI state seen.

        Raises :class:`AirflowRunError` (with task states, failed tasks' logs and component logs)
        if a run ends in another state than ``expect`` (None: accept any) or time runs out.
        """
        observed: dict[tuple[str, str], dict[tuple[str, int], list[str]]] = {run: {} for run in runs}
        final: dict[tuple[str, str], dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while True:
            for dag_id, run_id in runs:
                if (dag_id, run_id) in final:
                    continue
                run = self.dag_run(dag_id, run_id)
                for ti in self.task_instances(dag_id, run_id):
                    seen = observed[(dag_id, run_id)].setdefault((ti["task_id"], ti.get("map_index", -1)), [])
                    state = str(ti.get("state"))
                    if not seen or seen[-1] != state:
                        seen.append(state)
                if run.get("state") in TERMINAL_RUN_STATES:
                    final[(dag_id, run_id)] = run
            if len(final) == len(runs) or time.monotonic() > deadline:
                break
            time.sleep(poll)
        outcomes = {}
        problems = []
        for dag_id, run_id in runs:
            run = final.get((dag_id, run_id)) or self.dag_run(dag_id, run_id)
            outcome = RunOutcome(
                dag_id, run_id, run, self.task_instances(dag_id, run_id), observed[(dag_id, run_id)]
            )
            outcomes[(dag_id, run_id)] = outcome
            if (dag_id, run_id) not in final:
                problems.append(f"{dag_id}/{run_id} did not finish within {timeout:.0f} s ({outcome.state})")
            elif expect is not None and outcome.state != expect:
                problems.append(f"{dag_id}/{run_id} ended {outcome.state}, expected {expect}")
        if problems:
            details = "\n\n".join(self.describe_run(o) for o in outcomes.values())
            raise AirflowRunError("\n".join(problems) + "\n\n" + details + "\n\n" + self._diag())
        return outcomes

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        *,
        timeout: float = 180.0,
        poll: float = 1.0,
        expect: str | None = "success",
    ) -> RunOutcome:
        return self.wait_for_runs([(dag_id, run_id)], timeout=timeout, poll=poll, expect=expect)[
            (dag_id, run_id)
        ]

    def explain_run(self, dag_id: str, run_id: str) -> str:
        """Where a run stands right now, for a failure message: its task table, the log tails of its
        tasks that did not succeed, and every component's log tail and exit status."""
        now = RunOutcome(dag_id, run_id, self.dag_run(dag_id, run_id), self.task_instances(dag_id, run_id))
        return self.describe_run(now) + "\n\n" + self._diag()

    def describe_run(self, outcome: RunOutcome, log_lines: int = 30) -> str:
        """Task table of a run plus the log tail of every task that is not successful."""
        lines = [f"=== {outcome.dag_id} / {outcome.run_id}: {outcome.state} ==="]
        for ti in sorted(outcome.task_instances, key=lambda t: (t["task_id"], t.get("map_index", -1))):
            key = (ti["task_id"], ti.get("map_index", -1))
            seen = " -> ".join(outcome.observed_states.get(key, []))
            lines.append(
                f"  {ti['task_id']}[{key[1]}] state={ti.get('state')} try={ti.get('try_number')} seen: {seen}"
            )
        for ti in outcome.task_instances:
            if ti.get("state") == "success" or not ti.get("try_number"):
                continue  # fine, or never ran (upstream_failed, skipped): no log to show
            try:
                text = self.task_log(
                    outcome.dag_id,
                    outcome.run_id,
                    ti["task_id"],
                    ti.get("try_number") or 1,
                    ti.get("map_index", -1),
                )
            except Exception as exc:  # diagnostics must never hide the real failure
                text = f"<log unavailable: {exc}>"
            tail = "\n".join(text.splitlines()[-log_lines:])
            lines.append(f"--- log of {ti['task_id']}[{ti.get('map_index', -1)}] ---\n{tail}")
        return "\n".join(lines)

    def _diag(self) -> str:
        if self._diagnostics is None:
            return ""
        try:
            return self._diagnostics()
        except Exception as exc:  # pragma: no cover - diagnostics only
            return f"<diagnostics failed: {exc}>"


# Context every task-log record repeats; dropped so the lines stay readable in failure messages.
_LOG_CONTEXT_KEYS = frozenset(
    {"timestamp", "level", "logger", "event", "dag_id", "task_id", "run_id", "map_index", "ti_id"}
    | {"try_number", "filename", "lineno", "loc"}
)


def _format_log_entry(entry: Any) -> str:
    """One structured log record as a line: ``timestamp [level] logger: event key=value ...``."""
    if not isinstance(entry, dict):
        return str(entry)
    head = " ".join(
        str(part)
        for part in (
            entry.get("timestamp"),
            f"[{entry['level']}]" if entry.get("level") else None,
            f"{entry['logger']}:" if entry.get("logger") else None,
            entry.get("event"),
        )
        if part
    )
    extra = []
    for key, value in entry.items():
        if key in _LOG_CONTEXT_KEYS:
            continue
        if key == "error_detail" and isinstance(value, list):
            value = "; ".join(
                f"{e.get('exc_type')}: {e.get('exc_value')}" for e in value if isinstance(e, dict)
            )
        elif key == "sources" and isinstance(value, list):
            value = "\n".join(map(str, value))
        extra.append(f"{key}={value}")
    return " ".join([head, *extra]).rstrip()
