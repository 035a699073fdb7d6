"""`make demo` (scripts/demo.py) for real: emulator, `airflow dags test`, a short progress view.

Started without the venv on PATH, as `make demo` is from a shell that never activated it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.shell import bare_env

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def run_demo(demo_dir: Path, **env_vars: str) -> subprocess.CompletedProcess[str]:
    """scripts/demo.py as `make demo` runs it, against the emulator (never the real service)."""
    # As from a shell where the venv is not activated (issue 23): no `airflow` on PATH.
    env = {**bare_env(), "GPTPROTO_DEMO_DIR": str(demo_dir), **env_vars}
    env.pop("GPTPROTO_API_KEY", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )


def test_demo_shows_a_short_progress_view_and_logs_everything_to_a_named_file(tmp_path: Path) -> None:
    result = run_demo(tmp_path)
    shown = result.stdout
    assert result.returncode == 0, shown + result.stderr
    lines = shown.splitlines()
    assert len(lines) <= 12, shown  # a progress view, not Airflow's wall of text
    assert re.match(r"Emulator started at http://127\.0\.0\.1:\d+", lines[0]), shown
    created = re.search(r"task created: (\S+)", shown)
    assert created, shown
    statuses = re.findall(r"status: (\w+)", shown)
    assert statuses[-1] == "succeeded" and "running" in statuses, shown
    video = re.search(r"Video saved: (\S+\.mp4)\n  ([\d.]+) MiB, 5\.0 s, 1280x768 h264", shown)
    assert video, shown
    assert Path(video[1]).is_file() and Path(video[1]).parent == tmp_path / "videos"
    assert created[1] in video[1]
    logged = re.fullmatch(r"Full logs: (\S+)", lines[-1])
    assert logged, shown
    full = Path(logged[1]).read_text(encoding="utf-8")
    # Airflow's own output and the emulator's request log are both in the file, not on screen.
    assert f"Created GPTProto task {created[1]}" in full
    assert '"endpoint": "create"' in full and '"endpoint": "create"' not in shown
    assert "Pushing xcom" in full and "Pushing xcom" not in shown


def test_a_failed_generation_is_shown_in_a_few_lines_with_the_cause(tmp_path: Path) -> None:
    result = run_demo(tmp_path, GPTPROTO_DEMO_PROMPT="a fox [[fail:policy]]")
    shown = result.stdout
    assert result.returncode != 0
    lines = shown.splitlines()
    assert len(lines) <= 12, shown
    assert "status: failed" in shown and "Video saved" not in shown
    assert re.search(
        r"^FAILED \(exit 1\)\n  \S*GPTProtoTaskContentPolicyError: .*content policy", shown, re.M | re.I
    )
    assert re.fullmatch(r"Full logs: \S+\.log", lines[-1]) and Path(lines[-1].split(": ", 1)[1]).is_file()
