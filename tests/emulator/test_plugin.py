"""The pytest plugin's fixtures, as a user's test suite would use them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import requests

_started: list[Any] = []


def test_session_fixture_exposes_url_key_and_admin(gptproto_emulator: Any) -> None:
    assert gptproto_emulator.url.startswith("http://127.0.0.1:")
    assert gptproto_emulator.api_url == gptproto_emulator.url + "/api/v3"
    assert gptproto_emulator.api_key == "emulator-test-key"
    assert gptproto_emulator.admin is gptproto_emulator
    assert gptproto_emulator.admin.health()["status"] == "ok"
    config = gptproto_emulator.config()
    assert (config["queue_seconds"], config["run_seconds"]) == (0.2, 0.5)


def test_factory_starts_emulators_with_custom_flags(gptproto_emulator_factory: Any) -> None:
    emulator = gptproto_emulator_factory(
        dialect="predictions", queue_seconds=0.1, run_seconds=0.1, video_bytes="1M", api_key="custom"
    )
    _started.append(emulator)
    config = emulator.config()
    assert config["dialect"] == "predictions" and config["video_bytes"] == 1024 * 1024
    response = requests.post(
        emulator.api_url + "/contents/generations/tasks",
        json={"model": "m", "prompt": "p"},
        headers={"Authorization": "Bearer custom"},
        timeout=10,
    )
    assert response.json()["code"] == 200


def test_factory_emulators_are_stopped_after_their_test() -> None:
    assert _started, "runs after test_factory_starts_emulators_with_custom_flags"
    assert all(emulator.process.poll() is not None for emulator in _started)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_user_suite_with_failing_test_leaves_no_emulator_behind(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.txt"
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(f"""
        import requests

        def test_uses_emulator(gptproto_emulator, gptproto_emulator_factory):
            extra = gptproto_emulator_factory(dialect="ark")
            with open({str(pid_file)!r}, "w") as handle:
                handle.write(f"{{gptproto_emulator.process.pid}} {{extra.process.pid}}")
            response = requests.post(
                gptproto_emulator.api_url + "/contents/generations/tasks",
                json={{"model": "m", "prompt": "p"}},
                headers={{"Authorization": "Bearer " + gptproto_emulator.api_key}},
            )
            assert response.status_code == 200
            assert gptproto_emulator.stats()["tasks_created"] == 1
            assert False, "deliberate failure"
    """)
    )
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    if not any(ep.name == "gptproto_emulator" for ep in entry_points(group="pytest11")):
        args[3:3] = ["-p", "airflow_provider_gptproto.emulator.pytest_plugin"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert "1 failed" in result.stdout, result.stdout + result.stderr
    assert "deliberate failure" in result.stdout
    pids = [int(pid) for pid in pid_file.read_text().split()]
    assert len(pids) == 2 and not any(_pid_alive(pid) for pid in pids)
