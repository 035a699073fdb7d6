"""scripts/check_test_sleeps.py (run by `make lint`) flags a fixed sleep and nothing else."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "check_test_sleeps.py"


@pytest.fixture(scope="module")
def checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_test_sleeps", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _found(checker: ModuleType, root: Path, source: str) -> list[str]:
    (root / "tests").mkdir(exist_ok=True)
    (root / "dev").mkdir(exist_ok=True)
    (root / "tests" / "test_x.py").write_text(source, encoding="utf-8")
    return list(checker.fixed_sleeps(root))


def test_a_fixed_sleep_before_an_assertion_is_flagged(checker: ModuleType, tmp_path: Path) -> None:
    source = "import time\n\ndef test_it():\n    start()\n    time.sleep(0.3)\n    assert done()\n"
    assert _found(checker, tmp_path, source) == ["tests/test_x.py:5: fixed sleep in test_it"]


def test_an_async_fixed_sleep_in_a_nested_function_is_flagged(checker: ModuleType, tmp_path: Path) -> None:
    source = "import asyncio\n\ndef test_it():\n    async def main():\n        await asyncio.sleep(1)\n"
    assert _found(checker, tmp_path, source) == ["tests/test_x.py:5: fixed sleep in test_it.main"]


def test_a_fixed_playwright_wait_is_flagged(checker: ModuleType, tmp_path: Path) -> None:
    source = "def test_it(page):\n    page.click('x')\n    page.wait_for_timeout(500)\n"
    assert _found(checker, tmp_path, source) == ["tests/test_x.py:3: fixed sleep in test_it"]


def test_poll_intervals_and_yields_are_not_flagged(checker: ModuleType, tmp_path: Path) -> None:
    source = (
        "import asyncio, time\n\n"
        "def wait():\n    while not ready():\n        time.sleep(0.1)\n\n"
        "async def yields():\n    await asyncio.sleep(0)\n"
    )
    assert _found(checker, tmp_path, source) == []


def test_a_while_loop_in_an_outer_function_does_not_excuse_an_inner_one(
    checker: ModuleType, tmp_path: Path
) -> None:
    source = "import time\n\ndef outer():\n    while True:\n        def inner():\n            time.sleep(1)\n"
    assert _found(checker, tmp_path, source) == ["tests/test_x.py:6: fixed sleep in outer.inner"]


def test_an_allowed_place_is_not_flagged(
    checker: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(checker.ALLOWED, "tests/test_x.py::outage", "the length of an outage")
    assert _found(checker, tmp_path, "import time\n\ndef outage():\n    time.sleep(2)\n") == []


def test_the_repository_has_no_fixed_sleep(checker: ModuleType) -> None:
    assert list(checker.fixed_sleeps(SCRIPT.parents[1])) == []
