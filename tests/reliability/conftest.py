"""Fixtures of the real-Airflow reliability tests (process faults, soak, secret scan).

One Airflow stack serves test_process_faults.py, test_soak.py and test_secrets.py (start-up is a
large share of their cost); it is package-scoped, so it is stopped once this folder's tests are done.
The secret scan must see what every other run wrote, so its tests are moved after the soak.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.support.reliability_stack import ReliabilityEnv, reliability_env

SCAN_LAST = "test_secrets.py"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run test_secrets.py right after the last other user of the shared stack (test_soak.py)."""
    last = [item for item in items if item.path.name == SCAN_LAST and item.path.parent.name == "reliability"]
    if not last:
        return
    moved = {id(item) for item in last}
    rest = [item for item in items if id(item) not in moved]
    users = [i for i, item in enumerate(rest) if item.path.name in ("test_process_faults.py", "test_soak.py")]
    if users:  # else the scan runs alone (on its own failure run) where it was collected
        items[:] = rest[: users[-1] + 1] + last + rest[users[-1] + 1 :]


@pytest.fixture(scope="package")
def rel_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReliabilityEnv]:
    """The shared stack and emulators; the API key is long, random and used by every connection."""
    api_key = "sk-gptproto-reliability-" + secrets.token_hex(24)
    wrong_key = "sk-gptproto-wrong-" + secrets.token_hex(24)
    with reliability_env(tmp_path_factory.mktemp("reliability"), api_key, wrong_key) as env:
        yield env
