"""The bundled emulator for the demo scripts: harness.start_emulator with a throw-away key."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow_provider_gptproto.emulator.harness import start_emulator


@contextmanager
def running_emulator(**options: Any) -> Iterator[tuple[str, str]]:
    """Yield (base_url, api_key) of a fresh emulator on a free loopback port; stop it afterwards.

    ``options`` are the harness's (``queue_seconds=1``, ``log_file=path``, ...). The emulator
    also exits on its own when the script that started it dies.
    """
    api_key = "demo-" + secrets.token_hex(8)
    with start_emulator(api_key=api_key, **options) as emulator:
        yield emulator.url, api_key
