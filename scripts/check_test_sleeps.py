"""`make lint`: no test waits on the clock.

Every wait in a test is a wait for a condition, with a cap that only a real failure reaches. A
``sleep`` is therefore allowed in ``tests/`` and in the harness the tests drive (``dev/``) only

- as the poll interval of a condition loop: lexically inside a ``while`` loop of the same function
  (``while not done(): sleep(0.1)``, ``wait_for(...)`` and friends), or
- as ``sleep(0)``, which yields to the event loop and waits for nothing, or
- at a place in ``ALLOWED`` below, each with the reason it does not time an assertion.

Anything else (a fixed ``sleep`` followed by an assertion about what happened meanwhile) fails
lint with the file, line and function, so a new one is caught in review before it flakes in CI.

It reads code, it does not run it: a ``sleep`` inside a ``while`` is taken for a poll interval
(``while True: sleep(3); break`` would pass), and waits spelled otherwise (``Event.wait(3)``,
``from time import sleep as pause``) are not seen. Review the rest.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

# "path::function": why this sleep is not a wait for something to have happened.
ALLOWED = {
    "tests/integration/test_newcomer_paths.py::_outage_once.run": (
        "the length of a simulated outage (the API is down this long); nothing is asserted about "
        "what happened during it, and the test waits for its own conditions after it"
    ),
    "dev/airflow_stack.py::AirflowClient.request": (
        "backoff between the few retries of a GET that Airflow 3.3.2 answers 500 (see the comment "
        "there); the caller's own wait_for loop decides, nothing is asserted about the time"
    ),
    "tests/support/supervisor_comms.py::FakeComms.asend": (
        "a supervisor that never answers (hang=True) until the caller cancels it; the tests assert "
        "the caller's own timeout, never how long this slept"
    ),
}

# The tests and the harness they wait through (dev/: Airflow stacks, the cluster, its servers).
SCANNED = ("tests", "dev")
# time.sleep, asyncio.sleep and Playwright's page.wait_for_timeout.
SLEEP_NAMES = {"sleep", "wait_for_timeout"}


def _is_sleep(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr in SLEEP_NAMES and isinstance(func.value, ast.Name)
    return isinstance(func, ast.Name) and func.id in SLEEP_NAMES


def _is_zero(call: ast.Call) -> bool:
    return bool(call.args) and isinstance(call.args[0], ast.Constant) and call.args[0].value == 0


class _Finder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.scope: list[str] = []
        self.loops: list[int] = [0]  # while-loop depth per function scope
        self.found: list[tuple[int, str]] = []

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)
        self.loops.append(0)
        self.generic_visit(node)
        self.loops.pop()
        self.scope.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_While(self, node: ast.While) -> None:
        self.loops[-1] += 1
        self.generic_visit(node)
        self.loops[-1] -= 1

    def visit_Call(self, node: ast.Call) -> None:
        if _is_sleep(node) and not _is_zero(node) and self.loops[-1] == 0:
            self.found.append((node.lineno, ".".join(self.scope) or "<module>"))
        self.generic_visit(node)


def fixed_sleeps(root: Path) -> Iterator[str]:
    """``path:line: function`` for every sleep in tests/ and dev/ neither a poll interval nor allowed."""
    for path in sorted(p for folder in SCANNED for p in (root / folder).rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        finder = _Finder()
        finder.visit(ast.parse(path.read_text(encoding="utf-8"), filename=relative))
        for line, function in finder.found:
            if f"{relative}::{function}" not in ALLOWED:
                yield f"{relative}:{line}: fixed sleep in {function}"


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    problems = list(fixed_sleeps(root))
    for problem in problems:
        print(problem)
    if problems:
        print(
            "A test waits for a condition, not for time: use a wait_for loop, or add the place to "
            "ALLOWED in scripts/check_test_sleeps.py with the reason it times no assertion."
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
