"""Start the bundled emulator as a child process for the demo scripts (tests use the pytest plugin)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def running_emulator(*args: str) -> Iterator[tuple[str, str]]:
    """Yield (base_url, api_key) of a fresh emulator on a free loopback port; stop it afterwards."""
    api_key = "demo-" + secrets.token_hex(8)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_gptproto.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *args,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "GPTPROTO_EMULATOR_API_KEY": api_key},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"emulator did not start (printed {url!r})")
        yield url, api_key
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
