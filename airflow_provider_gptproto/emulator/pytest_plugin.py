"""pytest plugin (entry point ``gptproto_emulator``): emulator fixtures for your own tests.

Fixtures:

- ``gptproto_emulator`` (session): one emulator on a free loopback port with fast timings
  (queue 0.2 s, run 0.5 s). Has ``.url``, ``.api_url`` (``.url + "/api/v3"``), ``.api_key``
  and the admin methods (``.stats()``, ``.reset()``, ``.add_fault(**rule)``,
  ``.clear_faults()``, ``.requests_log()``, ``.tasks()``, ``.configure(**settings)``);
  ``.admin`` is the same object.
- ``gptproto_emulator_clean`` (function): the session emulator, reset before the test.
- ``gptproto_emulator_factory`` (function): ``factory(dialect="ark", queue_seconds=0.2, ...)``
  starts extra emulators with any CLI flags (``no_list_endpoint=True`` for ``--no-list-endpoint``);
  they are stopped when the test ends.

Extra CLI arguments for the session emulator: ``--gptproto-emulator-arg=--stringly-numbers``
(repeatable) or the ini option ``gptproto_emulator_args``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .harness import EmulatorProcess, start_emulator, stop_all


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gptproto-emulator")
    group.addoption(
        "--gptproto-emulator-arg",
        action="append",
        default=[],
        help="extra CLI argument for the session-wide GPTProto emulator (repeatable)",
    )
    parser.addini("gptproto_emulator_args", "extra CLI arguments for the session-wide GPTProto emulator")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_all()


def _extra_args(config: pytest.Config) -> list[str]:
    """Extra CLI args from ini/options (tolerates registration after option parsing)."""
    try:
        extra = shlex.split(str(config.getini("gptproto_emulator_args") or ""))
    except ValueError:
        extra = []
    return extra + list(config.getoption("--gptproto-emulator-arg", default=None) or [])


@pytest.fixture(scope="session")
def gptproto_emulator(pytestconfig: pytest.Config) -> Iterator[EmulatorProcess]:
    """A GPTProto emulator for the whole test session (fast timings, envelope dialect)."""
    extra = _extra_args(pytestconfig)
    emulator = start_emulator(extra_args=extra)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def gptproto_emulator_clean(gptproto_emulator: EmulatorProcess) -> EmulatorProcess:
    """The session emulator after ``reset()``: no tasks, counters, rules; start-up settings."""
    gptproto_emulator.reset()
    return gptproto_emulator


@pytest.fixture
def gptproto_emulator_factory() -> Iterator[Callable[..., EmulatorProcess]]:
    """Start extra emulators: ``factory(dialect="ark", video_bytes="5M", faults=[...])``."""
    started: list[EmulatorProcess] = []

    def factory(**options: Any) -> EmulatorProcess:
        emulator = start_emulator(**options)
        started.append(emulator)
        return emulator

    try:
        yield factory
    finally:
        for emulator in started:
            emulator.stop()
