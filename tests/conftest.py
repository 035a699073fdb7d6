"""Test-wide settings and fixtures.

A throw-away AIRFLOW_HOME so no test ever touches ~/airflow; the bundled emulator pointed at by
``gptproto_default``; and an Airflow DB for ``DAG.test()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Must run before anything imports airflow (conftest files load before test modules).
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="gptproto-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ.setdefault(
    "AIRFLOW__CORE__DAGS_FOLDER", os.path.join(os.path.dirname(__file__), "integration", "dags")
)

# After the settings above: these import the Airflow-stack harness.
from tests.support import shared, socket_guard
from tests.support.video_plugin_stack import VideoPluginStack, video_plugin_stack


@pytest.fixture(scope="session", autouse=True)
def _loopback_only() -> Iterator[None]:
    """Every connection of the session goes to loopback (tests/support/socket_guard.py)."""
    uninstall = socket_guard.install()
    yield
    uninstall()


@pytest.fixture(autouse=True)
def _no_connection_left_loopback() -> Iterator[None]:
    """Fail a test that tried to leave loopback, even if the code under test swallowed the error."""
    socket_guard.violations.clear()
    yield
    assert not socket_guard.violations, f"socket guard: {socket_guard.violations}"


@pytest.fixture
def emulator(gptproto_emulator_clean: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A reset emulator that ``gptproto_default`` points at (JSON form of AIRFLOW_CONN_*)."""
    conn = {
        "conn_type": "gptproto",
        "host": gptproto_emulator_clean.url,
        "password": gptproto_emulator_clean.api_key,
    }
    monkeypatch.setenv("AIRFLOW_CONN_GPTPROTO_DEFAULT", json.dumps(conn))
    return gptproto_emulator_clean


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """Migrate the metadata DB of the test AIRFLOW_HOME once, for DAG.test() runs."""
    home = Path(os.environ["AIRFLOW_HOME"])
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield home


# ---------------------------------------------------------------- stacks shared across modules
shared.SHARED_NAMES.add("video_plugin")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shared.group_users(items)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    shared.release_unused(nextitem)


@pytest.fixture(scope="session")
def video_plugin(tmp_path_factory: pytest.TempPathFactory) -> VideoPluginStack:
    """The UI plugin's stack with its finished runs, for tests/e2e/test_ui_plugin.py and the browser.

    Started by its first user and stopped after its last (tests/support/shared.py): one start-up
    and one round of runs instead of one per module.
    """
    return shared.acquire(
        "video_plugin",
        lambda: video_plugin_stack(
            tmp_path_factory.mktemp("ui-airflow-home"), tmp_path_factory.mktemp("ui-work")
        ),
    )
