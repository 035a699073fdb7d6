"""Private Postgres and Redis servers from Debian's packages, for ``make cluster`` and tests/cluster.

Each server is this process's own child: its own data directory, a free loopback port (never 5432 or
6379), its own session, started and stopped by PID. The system services are never touched. When run
as root (CI containers), Postgres runs as the ``postgres`` user, which it insists on.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from dev.airflow_stack import free_ports


class ServiceError(RuntimeError):
    """A server binary is missing, or the server did not start or stop."""


def _postgres_bin(name: str) -> str:
    """A Postgres server binary (initdb, postgres): Debian keeps them out of PATH, per major version."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise ServiceError(f"{name} not found: install Debian's postgresql package (apt-get install postgresql)")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    while not _port_open(port):
        if process.poll() is not None:
            raise ServiceError(
                f"{name} exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise ServiceError(f"{name} did not listen on port {port} within {timeout:.0f} s")
        time.sleep(0.1)


def open_for_postgres(folder: Path) -> None:
    """Let Postgres (run as the ``postgres`` user when we are root) reach a data directory below
    ``folder``: add traversal rights to it and its parents that we own (pytest's are 0700)."""
    if os.geteuid() != 0:
        return
    for path in (folder, *folder.parents):
        mode = path.stat().st_mode
        if path != Path("/") and path.stat().st_uid == 0 and mode & 0o011 != 0o011:
            path.chmod(mode | 0o011)


class _Server:
    """A server process in its own session, restartable on the same port and data."""

    name = "server"
    stop_signal = signal.SIGTERM  # the server's clean shutdown

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_ports(1)[0]
        self.log_path = self.data_dir.parent / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        log = self.log_path.open("ab")
        try:
            return subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **kwargs,
            )
        finally:
            log.close()

    def start(self, timeout: float = 60.0) -> None:
        raise NotImplementedError

    def stop(self, sig: int | None = None, timeout: float = 30.0) -> None:
        """Stop by PID with ``sig`` (default :attr:`stop_signal`; SIGKILL after ``timeout``).

        SIGKILL at once crashes it like a lost machine.
        """
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(self.stop_signal if sig is None else sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        # Postgres backends follow their postmaster; anything left of the session goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def restart(self, sig: int | None = None) -> None:
        """Stop (by default with :attr:`stop_signal`) and start again on the same port and data."""
        self.stop(sig)
        self.start()


class PostgresServer(_Server):
    """``postgres`` on a private data directory: database and user ``airflow``, trust auth, loopback."""

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown (SIGTERM would wait for every client to leave)

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        super().__init__(data_dir, port)
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"

    def _own(self, path: Path) -> None:
        if self._user:
            os.chown(path, self._user["user"], self._user["group"])

    def start(self, timeout: float = 60.0) -> None:
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._own(self.data_dir)
            subprocess.run(
                [
                    _postgres_bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "airflow",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ],
                check=True,
                capture_output=True,
                **self._user,
            )
        self.log_path.touch()
        self._own(self.log_path)
        # No Unix socket in a shared place: the socket lives in the data directory.
        self.process = self._popen(
            [
                _postgres_bin("postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",  # a throw-away cluster: durability across power loss is not needed
            ],
            **self._user,
        )
        _wait_port(self.port, self.process, self.log_path, timeout, "postgres")
        if fresh:
            self._createdb(timeout)

    def _createdb(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:  # the port opens a moment before connections are accepted
            result = subprocess.run(
                [
                    _postgres_bin("createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "airflow",
                    "airflow",
                ],
                capture_output=True,
                text=True,
            )
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"createdb failed: {result.stderr}")
            time.sleep(0.3)


class RedisServer(_Server):
    """``redis-server`` with its data directory as working directory; no persistence, loopback only."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise ServiceError("redis-server not found: install Debian's redis-server package")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = self._popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ]
        )
        _wait_port(self.port, self.process, self.log_path, timeout, "redis-server")
