"""`make airflow`, `make cluster` and `make demo` from a shell where the venv is not activated.

A newcomer runs `make airflow` without activating .venv: the Makefile calls the venv's python, but
PATH has no `airflow`. `airflow standalone` starts its components as a bare `airflow`, so each
script must hand its children a PATH with the venv's bin first. Every script here is started with a
PATH of the system's directories only, and the UI it announces must answer at the address it printed.
`make demo` is started the same way by tests/scripts/test_demo.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gptproto.emulator.harness import wait_for as poll_until
from dev.airflow_stack import free_ports
from dev.services import open_for_postgres
from tests.support.shell import bare_env

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent)
BANNER = re.compile(r"^Airflow UI: (http://\S+)", re.M)
START_TIMEOUT = 420.0

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]


def components_healthy(url: str) -> bool:
    """Whether the scheduler, triggerer(s) and dag-processor behind ``url`` report healthy."""
    reply = get_json(f"{url}/api/v2/monitor/health")
    return all(reply[c]["status"] == "healthy" for c in ("scheduler", "triggerer", "dag_processor"))


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.load(reply)


def wait_for(condition: Any, timeout: float, what: str, explain: Any = lambda: "") -> Any:
    """The emulator harness's condition wait, failing with the scripts' own account of why."""
    try:
        return poll_until(condition, timeout, interval=0.5, what=what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{explain()}") from None


@contextmanager
def started(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` in its own process group; afterwards that group is stopped (SIGINT, then SIGKILL)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        for sig, grace in ((signal.SIGINT, 90.0), (signal.SIGKILL, 30.0)):
            if not _group_alive(process.pid):
                break
            os.killpg(process.pid, sig)
            deadline = time.monotonic() + grace
            while _group_alive(process.pid) and time.monotonic() < deadline:
                process.poll()  # reap the script itself, so that only live members keep the group
                time.sleep(0.5)
        process.wait(30)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_airflow_without_the_venv_on_path_serves_the_ui_it_announces(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    env = bare_env(GPTPROTO_STANDALONE_HOME=str(tmp_path / "home"), GPTPROTO_AIRFLOW_PORT=str(port))
    log = tmp_path / "standalone.log"
    with started([sys.executable, str(ROOT / "scripts" / "standalone.py")], env, log) as process:
        banner = wait_for(
            lambda: BANNER.search(log.read_text(errors="replace")) or process.poll() is not None,
            START_TIMEOUT,
            "the UI address",
            lambda: log.read_text(errors="replace")[-4000:],
        )
        output = log.read_text(errors="replace")
        assert banner is not True, f"the script exited ({process.returncode}) without a UI:\n{output[-4000:]}"
        assert "FileNotFoundError" not in output, output[-4000:]
        url = banner[1]
        assert url == f"http://localhost:{port}"
        # The address is printed once the UI answers, so it answers at once.
        health = get_json(f"{url}/api/v2/monitor/health")
        assert health["metadatabase"]["status"] == "healthy", health
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200 and b"<html" in page.read().lower()

        wait_for(
            lambda: components_healthy(url),
            180,
            "scheduler, triggerer and dag-processor",
            lambda: log.read_text()[-4000:],
        )


def test_make_cluster_without_the_venv_on_path_serves_the_ui_it_announces() -> None:
    # Not under pytest's basetemp (0700 on every start): Postgres runs as the postgres user under root.
    root = Path(tempfile.mkdtemp(prefix="gptproto-make-cluster-"))
    open_for_postgres(root)
    env = bare_env(GPTPROTO_CLUSTER_DIR=str(root / "cluster"))
    script = [sys.executable, str(ROOT / "scripts" / "cluster.py")]
    try:
        started_ = subprocess.run(
            [*script, "start"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        shown = started_.stdout + started_.stderr
        assert started_.returncode == 0, shown
        banner = BANNER.search(started_.stdout)
        assert banner, shown
        url = banner[1]
        health = get_json(f"{url}/api/v2/monitor/health")
        assert health["metadatabase"]["status"] == "healthy", health

        wait_for(lambda: components_healthy(url), 180, "scheduler, triggerers and dag-processor")
    finally:
        stopped = subprocess.run(
            [*script, "stop"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        shutil.rmtree(root, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
