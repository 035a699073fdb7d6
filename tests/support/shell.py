"""The environment of a shell where the project's venv was never activated (issue 23)."""

from __future__ import annotations

import os
import shutil

# What a fresh login shell has: no virtualenv, no pyenv shims (whose `airflow` may be another one).
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"


def bare_env(**extra: str) -> dict[str, str]:
    """The test run's environment (PYTHONPATH keeps this checkout) without the venv on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "GPTPROTO_API_KEY")}
    env["PATH"] = BARE_PATH
    assert shutil.which("airflow", path=env["PATH"]) is None, "an airflow on the bare PATH hides the bug"
    return {**env, **extra}
