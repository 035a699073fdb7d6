"""Shell commands README.md shows, run as shown (issue 23 item 6).

README's ``airflow connections test gptproto_default`` answered "Testing connections is disabled in
Airflow configuration" on a default Airflow: the block that shows it must also enable
``[core] test_connection``. The block runs with bash in a throw-away Airflow home, with
``gptproto_default`` pointing at the emulator and no ``test_connection`` setting of our own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_gptproto.emulator.harness import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # an airflow CLI process


def readme_bash_blocks(containing: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [block for block in BASH_BLOCK.findall(text) if containing in block]


def test_the_connection_test_command_works_as_readme_shows_it(
    tmp_path: Path, gptproto_emulator_clean: EmulatorProcess
) -> None:
    blocks = readme_bash_blocks("airflow connections test gptproto_default")
    assert blocks, "README shows no bash block running `airflow connections test gptproto_default`"
    emulator = gptproto_emulator_clean
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        AIRFLOW_HOME=str(tmp_path),
        AIRFLOW_CONN_GPTPROTO_DEFAULT=json.dumps(
            {"conn_type": "gptproto", "host": emulator.url, "password": emulator.api_key}
        ),
    )
    for block in blocks:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
        shown = f"{block}\n--- exit {result.returncode}\n{result.stdout}{result.stderr}"
        assert result.returncode == 0, shown
        assert "Connection success!" in result.stdout, shown
        assert "disabled" not in result.stdout, shown
    assert sum(emulator.stats()["requests"].values()) >= len(blocks), emulator.stats()  # it asked the API
