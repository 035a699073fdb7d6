"""The command line: --port 0 and the URL line, clean shutdown, the state file, the parent watchdog."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_gptproto.emulator.harness import EmulatorError, start_emulator, wait_for

MODULE = "airflow_provider_gptproto.emulator"
TASKS = "/api/v3/contents/generations/tasks"


def _spawn(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", MODULE, "--port", "0", "--quiet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_port_zero_prints_the_url_first_and_sigterm_exits_cleanly() -> None:
    process = _spawn("--api-key", "k")
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d{2,5}\n", line)
        url = line.strip()
        assert requests.get(url + "/_emulator/health", timeout=5).json()["status"] == "ok"
        response = requests.post(
            url + TASKS, json={"model": "m", "prompt": "p"}, headers={"Authorization": "k"}, timeout=5
        )
        assert response.status_code == 200
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert time.monotonic() - started < 10
        stdout, stderr = process.communicate()
        assert stdout == "" and "Traceback" not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigint_also_shuts_down_cleanly() -> None:
    process = _spawn()
    try:
        assert process.stdout is not None and process.stdout.readline().startswith("http://")
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_api_key_from_environment() -> None:
    env = {**os.environ, "GPTPROTO_EMULATOR_API_KEY": "from-env"}
    process = _spawn(env=env)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()

        def post(key: str) -> requests.Response:
            return requests.post(
                url + TASKS,
                json={"model": "m", "prompt": "p"},
                headers={"Authorization": f"Bearer {key}"},
                timeout=5,
            )

        assert post("from-env").status_code == 200 and post("other").status_code == 401
    finally:
        process.terminate()
        process.wait(15)


def test_help_lists_every_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", MODULE, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--api-key",
        "--dialect",
        "--queue-seconds",
        "--run-seconds",
        "--url-ttl-seconds",
        "--state-file",
        "--video-bytes",
        "--log-file",
        "--stringly-numbers",
        "--create-id-field",
        "--fault",
        "--fault-seed",
        "--max-queued",
        "--render-fps",
        "--public-url",
    ):
        assert flag in result.stdout


def test_bad_flag_values_are_rejected() -> None:
    for args in (["--dialect", "soap"], ["--queue-seconds", "-1"], ["--video-bytes", "lots"]):
        result = subprocess.run(
            [sys.executable, "-m", MODULE, *args], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2, args


SCRIPT = shutil.which("gptproto-emulator", path=str(Path(sys.executable).parent)) or shutil.which(
    "gptproto-emulator"
)


@pytest.mark.skipif(SCRIPT is None, reason="console script not installed")
def test_console_script() -> None:
    result = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--dialect" in result.stdout


def _create(emulator: Any, prompt: str) -> str:
    response = requests.post(
        emulator.url + TASKS,
        json={"model": "m", "prompt": prompt, "duration": 2},
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=10,
    )
    return str(response.json()["data"]["task_id"])


def _get(emulator: Any, task_id: str) -> requests.Response:
    return requests.get(
        f"{emulator.url}{TASKS}/{task_id}", headers={"Authorization": emulator.api_key}, timeout=10
    )


def test_state_file_survives_a_restart_and_lifecycles_continue(tmp_path: Path) -> None:
    state = tmp_path / "state" / "tasks.json"
    with start_emulator(state_file=str(state)) as first:
        done = _create(first, "[[queue:0]] [[run:0]] finished before restart")
        # Queued long enough that a slow machine still sees it unfinished before the restart.
        progressing = _create(first, "[[queue:4]] [[run:1]] finishes after restart")
        cancelled = _create(first, "[[queue:60]] cancelled")
        requests.delete(
            f"{first.url}{TASKS}/{cancelled}", headers={"Authorization": first.api_key}, timeout=10
        )
        deleted = _create(first, "[[queue:0]] [[run:0]] deleted")
        wait_for(lambda: _get(first, deleted).json()["data"]["status"] == "completed")
        requests.delete(f"{first.url}{TASKS}/{deleted}", headers={"Authorization": first.api_key}, timeout=10)
        old_link = wait_for(lambda: _get(first, done).json()["data"].get("video_url"))
        assert _get(first, progressing).json()["data"]["status"] in ("pending", "processing")
    saved = json.loads(state.read_text())
    assert {task["id"] for task in saved["tasks"]} == {done, progressing, cancelled}
    assert not list(state.parent.glob(".state-*"))  # atomic write left no temp file

    with start_emulator(state_file=str(state)) as second:
        assert second.port != 0
        assert _get(second, done).json()["data"]["status"] == "completed"
        assert _get(second, cancelled).json()["data"]["status"] == "cancelled"
        assert _get(second, deleted).status_code == 404
        wait_for(lambda: _get(second, progressing).json()["data"]["status"] == "completed", timeout=30)
        moved = old_link.replace(old_link.split("/_emulator")[0], second.url)
        video = requests.get(moved, timeout=30)  # the signing secret was persisted too
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_restart_with_the_same_state_file_comes_back_at_the_same_url(tmp_path: Path) -> None:
    """Issue 14 item 4: --port 0 the first time; every restart on that state file keeps the URL."""
    state = tmp_path / "tasks.json"
    first = start_emulator(state_file=str(state))  # the harness passes --port 0
    url = first.url
    assert json.loads(state.read_text())["port"] == first.port  # on disk before any task
    task_id = _create(first, "[[queue:60]] outlives two restarts")
    first.kill()  # a crash: no clean shutdown
    with start_emulator(state_file=str(state)) as second:
        assert second.url == url
        assert _get(second, task_id).json()["data"]["status"] == "pending"
    with start_emulator(state_file=str(state)) as third:  # after a clean stop as well
        assert third.url == url
        explicit = _free_port()
        # While the recorded port is taken, a restart says so instead of moving elsewhere.
        with pytest.raises(EmulatorError, match=r"recorded in .*tasks\.json.*pass another --port"):
            start_emulator(state_file=str(state))
    # An explicit non-zero --port wins, and becomes the recorded one.
    with start_emulator(state_file=str(state), port=explicit) as fourth:
        assert fourth.port == explicit != first.port
        assert _get(fourth, task_id).status_code == 200
    assert json.loads(state.read_text())["port"] == explicit


def test_state_is_on_disk_right_after_create_even_if_killed(tmp_path: Path) -> None:
    state = tmp_path / "tasks.json"
    first = start_emulator(state_file=str(state))
    task_id = _create(first, "[[queue:60]] survives a crash")
    first.kill()
    with start_emulator(state_file=str(state)) as second:
        assert _get(second, task_id).json()["data"]["status"] == "pending"


def test_emulator_exits_when_its_parent_dies() -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child = _spawn("--parent-pid", str(parent.pid))
    try:
        assert child.stdout is not None and child.stdout.readline().startswith("http://")
        parent.kill()
        parent.wait()
        assert child.wait(15) == 0
    finally:
        for process in (parent, child):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_max_queued_answers_429(gptproto_emulator_factory: Any, make_api: Any) -> None:
    emulator = gptproto_emulator_factory(max_queued=2, queue_seconds=60)
    api = make_api(emulator)
    assert [api.create().status_code for _ in range(3)] == [200, 200, 429]
    assert api.create().json()["error"]["code"] == "rate_limit_exceeded"


def test_public_url_is_used_in_links(gptproto_emulator_factory: Any, make_api: Any) -> None:
    emulator = gptproto_emulator_factory(
        public_url="http://videos.example.test:9999", queue_seconds=0, run_seconds=0
    )
    api = make_api(emulator)
    task_id = api.new_task(duration=2)
    assert api.video_url(task_id).startswith("http://videos.example.test:9999/_emulator/videos/")
