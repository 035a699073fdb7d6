"""The built wheel, installed as a user would (not editable) into a clean venv, runs the example DAG.

Nothing from this checkout is on the path of the venv's processes: the provider, its console
script ``gptproto-emulator`` and its Airflow registration all come from the wheel. Airflow is
pinned to the Makefile's AIRFLOW_LATEST. pip's cache keeps this to a few minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "gptproto_text_to_video"

pytestmark = [pytest.mark.slow, pytest.mark.packaging, pytest.mark.timeout(1500)]


def _airflow_latest() -> str:
    match = re.search(r"^AIRFLOW_LATEST \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "AIRFLOW_LATEST not found in the Makefile"
    return match[1]


def _run(*command: str | Path, env: dict[str, str], cwd: Path, timeout: float = 900) -> str:
    result = subprocess.run(
        [str(part) for part in command], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_built_wheel_installs_into_a_clean_venv_and_runs_the_example_dag(tmp_path: Path) -> None:
    # A bare environment: no PYTHONPATH (it would put this checkout first), no Airflow settings;
    # pip's own settings (index, cache, certificates) stay, as they would for a user.
    env = {
        key: value
        for key, value in os.environ.items()
        if key in ("PATH", "HOME", "LANG", "TMPDIR") or key.startswith("PIP_") or key.endswith("_PROXY")
    }
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", tmp_path / "dist", ROOT, env=env, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("airflow_provider_gptproto-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, env=env, cwd=tmp_path)
    bin_dir = venv / "bin"
    pins = [f"{wheel}[emulator]", f"apache-airflow=={_airflow_latest()}"]
    _run(bin_dir / "pip", "install", "-q", "--no-compile", *pins, env=env, cwd=tmp_path, timeout=1200)
    where = _run(
        bin_dir / "python",
        "-c",
        "import airflow_provider_gptproto as p; print(p.__file__)",
        env=env,
        cwd=tmp_path,
    )
    assert where.startswith(str(venv)), where  # the wheel's copy, not this checkout
    # The UI plugin's pages come from Jinja2 templates, package data the wheel must carry.
    gallery = _run(
        bin_dir / "python",
        "-c",
        "from airflow_provider_gptproto.plugins import pages\n"
        "print(pages.gallery('', [], [], None, 0, 24, 0))",
        env=env,
        cwd=tmp_path,
    )
    assert "No videos yet." in gallery and '<dialog id="player"' in gallery

    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(ROOT / "dags_examples" / f"{DAG_ID}.py", dags)
    emulator = subprocess.Popen(
        [bin_dir / "gptproto-emulator", "--port", "0", "--api-key", "wheel-test", "--queue-seconds", "0.5",
         "--run-seconds", "1", "--quiet", "--parent-pid", str(os.getpid())],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        airflow_env = {
            **env,
            "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_GPTPROTO_DEFAULT": json.dumps(
                {"conn_type": "gptproto", "host": url, "password": "wheel-test"}
            ),
        }
        providers = _run(bin_dir / "airflow", "providers", "list", env=airflow_env, cwd=tmp_path)
        assert "airflow-provider-gptproto" in providers
        _run(bin_dir / "airflow", "db", "migrate", env=airflow_env, cwd=tmp_path)
        videos = tmp_path / "videos"
        conf = json.dumps({"output_dir": str(videos)})
        _run(bin_dir / "airflow", "dags", "test", DAG_ID, "-c", conf, env=airflow_env, cwd=tmp_path)
    finally:
        emulator.terminate()
        emulator.wait(15)
    (video,) = videos.glob("*.mp4")
    assert video.read_bytes()[4:8] == b"ftyp"
