"""Starting emulator processes and talking to their admin endpoints, for tests.

Used by the pytest plugin and usable on its own (``with start_emulator() as emu: ...``).
Only ``requests`` and the standard library are imported here, so loading the pytest
plugin costs nothing for projects that never use the emulator.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

MODULE = "airflow_provider_gptproto.emulator"
DEFAULT_API_KEY = "emulator-test-key"
_LIVE: set[EmulatorProcess] = set()


class EmulatorError(RuntimeError):
    """The emulator failed to start or an admin call failed."""


class EmulatorAdmin:
    """Client for the ``/_emulator`` admin endpoints of a running emulator."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._session.request(
            method, f"{self.url}/_emulator{path}", timeout=self.timeout, **kwargs
        )
        if response.status_code >= 400:
            raise EmulatorError(f"{method} /_emulator{path} -> {response.status_code}: {response.text}")
        return response.json()

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def stats(self) -> dict[str, Any]:
        """Counts per endpoint and status, tasks created, bytes served, faults applied."""
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def reset(self) -> None:
        """Forget tasks, counters, log and fault rules; restore the settings the server started with."""
        self._call("POST", "/reset")

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        """Add one fault rule (see docs/emulator.md); returns it with its id."""
        result: dict[str, Any] = self._call("POST", "/faults", json=rule)
        return result

    def faults(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = self._call("GET", "/faults")["rules"]
        return rules

    def remove_fault(self, rule_id: str) -> None:
        self._call("DELETE", f"/faults/{rule_id}")

    def clear_faults(self) -> int:
        cleared: int = self._call("DELETE", "/faults")["cleared"]
        return cleared

    def requests_log(self, endpoint: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Structured request log (method, path, status, auth_present, ...; never the key)."""
        params: dict[str, Any] = {}
        if endpoint:
            params["endpoint"] = endpoint
        if limit is not None:
            params["limit"] = limit
        entries: list[dict[str, Any]] = self._call("GET", "/requests", params=params)["requests"]
        return entries

    def tasks(self) -> list[dict[str, Any]]:
        """Every task the emulator holds, with its internal status and request."""
        tasks: list[dict[str, Any]] = self._call("GET", "/tasks")["tasks"]
        return tasks

    def callbacks(self) -> list[dict[str, Any]]:
        """Every webhook delivery attempt: task_id, status, attempt, ok, http_status, error."""
        deliveries: list[dict[str, Any]] = self._call("GET", "/callbacks")["deliveries"]
        return deliveries

    def advance(self, *task_ids: str, to_end: bool = False) -> list[dict[str, str]]:
        """Move tasks (all unfinished ones when none are named) to their next phase now.

        With ``to_end=True`` they jump straight to their outcome: a test that does not study the
        generation itself never waits for one. Returns ``[{"id", "from", "to"}, ...]``.
        """
        body: dict[str, Any] = {"to": "end" if to_end else "next"}
        if task_ids:
            body["task_ids"] = list(task_ids)
        moved: list[dict[str, str]] = self._call("POST", "/advance", json=body)["advanced"]
        return moved

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/config")
        return result

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change runtime settings, e.g. ``configure(dialect="ark", stringly_numbers=True)``."""
        result: dict[str, Any] = self._call("POST", "/config", json=changes)
        return result

    def close(self) -> None:
        self._session.close()


def emulator_args(
    *,
    api_key: str | None = DEFAULT_API_KEY,
    dialect: str = "envelope",
    queue_seconds: float = 0.2,
    run_seconds: float = 0.5,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: list[dict[str, Any]] | None = None,
    extra_args: list[str] | None = None,
    **flags: Any,
) -> list[str]:
    """CLI arguments for the given options; other keyword options become ``--flag value``.

    ``True`` becomes a bare flag and ``False``/``None`` leaves the flag out, e.g.
    ``emulator_args(stringly_numbers=True, video_bytes="5M", state_file=path)``.
    """
    args = [
        "--host",
        host,
        "--port",
        str(port),
        "--dialect",
        dialect,
        "--queue-seconds",
        str(queue_seconds),
        "--run-seconds",
        str(run_seconds),
    ]
    if api_key:
        args += ["--api-key", api_key]
    for rule in faults or []:
        args += ["--fault", json.dumps(rule)]
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not None and value is not False:
            args += [flag, str(value)]
    return args + list(extra_args or [])


class EmulatorProcess(EmulatorAdmin):
    """A running emulator subprocess: its ``url``, ``api_key``, and the admin client methods."""

    def __init__(self, args: list[str], api_key: str | None, startup_timeout: float = 30.0) -> None:
        self.args = args
        self.api_key = api_key
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="gptproto-emulator-", suffix=".log", delete=False
        )
        command = [sys.executable, "-m", MODULE, *args, "--parent-pid", str(os.getpid())]
        env = dict(os.environ)
        env.pop("GPTPROTO_EMULATOR_API_KEY", None)
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL, env=env, text=True
        )
        _LIVE.add(self)
        try:
            url = self._read_url(startup_timeout)
        except BaseException:
            self.stop()
            raise
        super().__init__(url)

    @property
    def admin(self) -> EmulatorAdmin:
        """The admin client (this object itself; kept for readability: ``emu.admin.stats()``)."""
        return self

    @property
    def api_url(self) -> str:
        """Base URL for Ark-style clients: ``<url>/api/v3``."""
        return f"{self.url}/api/v3"

    @property
    def log_path(self) -> Path:
        """Where the emulator's stderr (JSON-lines request log) goes."""
        return Path(self._log.name)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def _read_url(self, timeout: float) -> str:
        assert self.process.stdout is not None
        found: list[str] = []
        reader = threading.Thread(
            target=lambda: found.append(self.process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(timeout)
        line = found[0].strip() if found else ""
        if not line.startswith("http"):
            self.process.poll()
            raise EmulatorError(
                f"emulator did not start (exit code {self.process.returncode}); log: {self._log_tail()}"
            )
        # Keep draining stdout so the child can never block on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        return line

    def _drain(self) -> None:
        stream = self.process.stdout
        if stream is not None:
            with contextlib.suppress(ValueError, OSError):
                for _ in stream:
                    pass

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return Path(self._log.name).read_text(encoding="utf-8", errors="replace")[-4000:]
        return ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (clean shutdown, state saved), then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        _LIVE.discard(self)
        with contextlib.suppress(Exception):
            self.close()
        with contextlib.suppress(OSError):
            self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, no clean shutdown (to test crash recovery)."""
        self.process.kill()
        self.process.wait(10)
        _LIVE.discard(self)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_emulator(
    api_key: str | None = DEFAULT_API_KEY, startup_timeout: float = 30.0, **options: Any
) -> EmulatorProcess:
    """Start an emulator on a free loopback port; options as for ``emulator_args``."""
    return EmulatorProcess(emulator_args(api_key=api_key, **options), api_key, startup_timeout)


def wait_for(
    predicate: Any,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
    error: type[Exception] = TimeoutError,
) -> Any:
    """Poll ``predicate()`` until it returns something truthy (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@atexit.register
def stop_all() -> None:
    """Belt and braces: no emulator outlives the process that started it."""
    for emulator in list(_LIVE):
        with contextlib.suppress(Exception):
            emulator.stop(timeout=5)
