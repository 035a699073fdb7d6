"""Helpers shared by the benchmarks: pinned child processes, process probes, machine facts, results.

Every benchmark talks to 127.0.0.1 only, bounds its loops by count and time, and stops every process
it started (``Child`` objects are also stopped at interpreter exit).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import gc
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import psutil

from airflow_provider_gptproto.emulator.harness import wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = REPO_ROOT / "bench" / "out"
PY = sys.executable
# Two cores here: load generators / clients on core 0, servers on core 1 (see README).
CLIENT_CORE = 0
SERVER_CORE = 1
API_KEY = "bench-key-0123456789"
EMULATOR_MODULE = "airflow_provider_gptproto.emulator"

_LIVE: set[Child] = set()


# ------------------------------------------------------------------------------------------ pinning
def can_pin() -> bool:
    """Pinning needs taskset and at least two cores; otherwise processes share whatever there is."""
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pinned(args: Sequence[str], core: int | None) -> list[str]:
    """``args`` prefixed with ``taskset -c core`` when pinning is possible."""
    if core is None or not can_pin():
        return list(args)
    return ["taskset", "-c", str(core % (os.cpu_count() or 1)), *args]


def _tree(pid: int) -> list[psutil.Process]:
    """``pid`` and its descendants; none if it is gone."""
    try:
        return [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def renice_tree(pid: int, niceness: int) -> None:
    """Set the nice value of ``pid`` and its descendants (best effort)."""
    for proc in _tree(pid):
        with contextlib.suppress(psutil.Error):
            proc.nice(niceness)


class GcPauses:
    """The collector's pauses per generation while installed (``with GcPauses() as pauses:``): a full
    collection over a large heap stops the whole loop, which lag samples alone cannot tell apart from
    a slow callback."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def report(self) -> dict[str, dict[str, float]]:
        """``{"gen<n>": {"count", "total_ms", "max_ms"}}`` for generations 0, 1 and 2."""
        return {
            f"gen{gen}": {
                "count": len(times),
                "total_ms": sum(times) * 1000,
                "max_ms": max(times, default=0.0) * 1000,
            }
            for gen, times in self.pauses.items()
        }


def pin_tree(pid: int, cores: Sequence[int]) -> int:
    """Pin every thread of ``pid`` and of its descendants (for processes we did not exec ourselves)."""
    count = 0
    for proc in _tree(pid):
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{proc.pid}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(tid), set(cores))
                    count += 1
    return count


# ------------------------------------------------------------------------------------------ probes
def _socket_inodes(pid: int | str) -> list[str]:
    inodes = []
    base = f"/proc/{pid}/fd"
    try:
        names = os.listdir(base)
    except OSError:
        return []
    for name in names:
        with contextlib.suppress(OSError):
            link = os.readlink(f"{base}/{name}")
            if link.startswith("socket:["):
                inodes.append(link[8:-1])
    return inodes


def _unix_inodes(pid: int | str) -> set[str]:
    try:
        lines = Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]
    except OSError:
        return set()
    return {fields[6] for fields in (line.split() for line in lines) if len(fields) > 6}


def socket_fds(pid: int | str) -> int:
    """Open network (non-Unix) socket fds of a process: its TCP connections and listeners.

    Unix sockets (asyncio's self-pipe pair, supervisor comms) are left out; TIME_WAIT leftovers hold
    no fd and are not counted either.
    """
    inodes = _socket_inodes(pid)
    if not inodes:
        return 0
    unix = _unix_inodes(pid)
    return sum(1 for inode in inodes if inode not in unix)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (threads included, children not)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes(pid: int | None = None) -> int:
    return int(psutil.Process(pid or os.getpid()).memory_info().rss)


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux ``clear_refs`` 5) so a later peak covers only what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """VmHWM of this process: the peak resident set since start or since ``reset_peak_rss``."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Sample:
    at: float
    sockets: int
    fds: int
    rss: int
    cpu: float


_Sampler = TypeVar("_Sampler", bound="PeriodicSampler")


class PeriodicSampler:
    """A background thread that calls :meth:`sample` every ``interval`` seconds until the block ends."""

    def __init__(self, interval: float, name: str) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def __enter__(self: _Sampler) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set() and self.sample():
            self._stop.wait(self.interval)

    def sample(self) -> bool:
        """Take one sample; False stops sampling."""
        raise NotImplementedError


class Sampler(PeriodicSampler):
    """Samples a process's sockets, fds, RSS and CPU from outside, once per ``interval`` (a thread)."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        super().__init__(interval, f"sampler-{pid}")
        self.pid = pid
        self.samples: list[Sample] = []

    def sample(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            times = proc.cpu_times()
            self.samples.append(
                Sample(
                    time.time(),
                    socket_fds(self.pid),
                    proc.num_fds(),
                    int(proc.memory_info().rss),
                    float(times.user + times.system),
                )
            )
        except psutil.Error:
            return False
        return True

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= end]


# ------------------------------------------------------------------------------------------ children
class Child:
    """A subprocess we started, in its own session so it and its children stop as one unit.

    ``url_line``: the child prints its base URL as the first stdout line (emulator, JSON server).
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        name: str,
        core: int | None = None,
        env: Mapping[str, str] | None = None,
        url_line: bool = False,
        startup_timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"bench-{name}-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            pinned(args, core),
            stdout=subprocess.PIPE,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=REPO_ROOT,
            text=True,
            start_new_session=True,
        )
        _LIVE.add(self)
        self.url = ""
        if url_line:
            try:
                self.url = self._first_line(startup_timeout)
            except BaseException:
                self.stop()
                raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def _first_line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        found: list[str] = []
        reader = threading.Thread(target=lambda: found.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        line = found[0].strip() if found else ""
        if not line.startswith("http"):
            raise RuntimeError(f"{self.name} did not start: {self.log_tail()}")
        threading.Thread(target=self._drain, daemon=True).start()
        return line

    def _drain(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            for _ in self.process.stdout or ():
                pass

    def communicate(self, timeout: float) -> str:
        """Wait for exit and return stdout (for children that print one JSON result and exit)."""
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"{self.name} did not finish in {timeout:.0f} s: {self.log_tail()}") from None
        if self.process.returncode != 0:
            raise RuntimeError(f"{self.name} exited {self.process.returncode}: {self.log_tail()}")
        return out or ""

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            self.log.flush()
            return Path(self.log.name).read_text(errors="replace")[-chars:]
        return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the child's session, SIGKILL what is left after ``timeout``."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):  # grandchildren that outlived the leader
            os.killpg(self.process.pid, signal.SIGKILL)
        _LIVE.discard(self)
        with contextlib.suppress(OSError):
            self.log.close()
            os.unlink(self.log.name)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for child in list(_LIVE):
        with contextlib.suppress(Exception):
            child.stop(timeout=3)


def json_server(core: int | None = SERVER_CORE, *, api_key: str = API_KEY) -> Child:
    """The minimal JSON server (bench/jsonserver.py), pinned to the server core."""
    return Child(
        [PY, "-m", "bench.jsonserver", "--port", "0", "--api-key", api_key],
        name="jsonserver",
        core=core,
        url_line=True,
    )


def emulator(core: int | None = SERVER_CORE, **flags: Any) -> Child:
    """A GPTProto emulator (quiet), pinned to the server core; flags as for the emulator CLI."""
    from airflow_provider_gptproto.emulator.harness import emulator_args

    flags.setdefault("quiet", True)
    args = emulator_args(api_key=flags.pop("api_key", API_KEY), **flags)
    env = {k: v for k, v in os.environ.items() if k != "GPTPROTO_EMULATOR_API_KEY"}
    return Child(
        [PY, "-m", EMULATOR_MODULE, *args, "--parent-pid", str(os.getpid())],
        name="emulator",
        core=core,
        env=env,
        url_line=True,
    )


def conn_json(base_url: str, api_key: str = API_KEY, **extra: Any) -> str:
    """An ``AIRFLOW_CONN_*`` value for a gptproto connection."""
    conn: dict[str, Any] = {"conn_type": "gptproto", "host": base_url, "password": api_key}
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


def client_env(**extra: str) -> dict[str, str]:
    """Environment of a benchmark client: a throw-away AIRFLOW_HOME, nothing inherited from Airflow."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW", "PYTEST"))}
    env["AIRFLOW_HOME"] = str(OUT_DIR / "airflow-home")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory that is removed whatever happens (big downloads land here)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------ statistics
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


# ------------------------------------------------------------------------------------------ facts
def machine() -> dict[str, Any]:
    """Cores, CPU model, memory, kernel, date and the versions that matter to the figures."""
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in (
        "apache-airflow",
        "apache-airflow-core",
        "apache-airflow-task-sdk",
        "apache-airflow-providers-http",
        "airflow-provider-gptproto",
        "aiohttp",
        "requests",
        "urllib3",
        "pydantic",
        "tenacity",
        "uvicorn",
        "psutil",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    curl = ""
    if shutil.which("curl"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            curl = subprocess.run(["curl", "--version"], capture_output=True, text=True, timeout=5).stdout
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pinning": "taskset" if can_pin() else "none (fewer than 2 cores or no taskset)",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
        "curl": curl.splitlines()[0] if curl else "not installed",
    }


# ------------------------------------------------------------------------------------------ results
@dataclass
class Target:
    """One target of the issue: the measured value, the rule, and whether it was met."""

    name: str
    value: str
    rule: str
    met: bool | None  # None: not measured in this mode


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""


@dataclass
class BenchResult:
    """What every benchmark returns; ``figures`` are headline numbers that must all be positive."""

    name: str
    title: str
    mode: str
    method: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BenchResult:
        return cls(
            **{
                **raw,
                "tables": [Table(**t) for t in raw.get("tables", [])],
                "targets": [Target(**t) for t in raw.get("targets", [])],
            }
        )


def fmt(value: Any, digits: int = 2) -> str:
    """Numbers for tables: fixed decimals, thousands separators, '-' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def ratio(value: float, base: float) -> float:
    return value / base if base else math.nan


def wait_until(predicate: Any, timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    """Poll ``predicate()`` until truthy (returned) or raise TimeoutError after ``timeout`` seconds."""
    return wait_for(predicate, timeout, interval, what)


def run_cli(
    module: str,
    run: Callable[[bool], BenchResult],
    client_main: Callable[[list[str]], None],
    argv: list[str] | None = None,
) -> None:
    """``python -m <module> [--smoke]`` prints the result as JSON; ``... client ...`` is the measured
    child process the benchmark starts itself."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["client"]:
        client_main(argv[1:])
        return
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.smoke).to_dict(), indent=2, default=str))
