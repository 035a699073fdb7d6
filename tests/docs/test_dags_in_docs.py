"""Every DAG shown in README.md and docs/*.md runs as shown against the emulator (issue 14 item 1).

A ```python block that defines a DAG (``@dag`` or ``DAG(...)``) is written out as it stands to a
DAG bundle of its own and run in-process with ``DAG.test()`` (what ``airflow dags test`` runs, less a
CLI start-up per block), with ``gptproto_default`` pointing at the emulator. A block that needs a
package we do not install says so in a comment, ``# needs: s3fs``; while that package is missing,
the test checks that loading the DAG fails with an error naming it, before anything is created
(nothing is paid for).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dagrun import SYNC_BEFORE_TEST, DagBag, _reserialize, _takes_include_examples

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
NEEDS = re.compile(r"#\s*needs:\s*([A-Za-z0-9_.\-\[\]]+)", re.I)


@dataclass(frozen=True)
class ShownDag:
    source: str  # e.g. README.md:97
    code: str
    dag_ids: tuple[str, ...]

    @property
    def needs(self) -> list[str]:
        return NEEDS.findall(self.code)


def _dag_ids(code: str) -> tuple[str, ...]:
    """dag_ids a block defines: ``@dag`` functions (or their ``dag_id=``) and ``DAG(...)`` calls."""
    ids = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                call = deco if isinstance(deco, ast.Call) else None
                target = call.func if call else deco
                name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
                if name == "dag":
                    ids.append(_kwarg(call, "dag_id") or node.name)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "DAG":
            given = _kwarg(node, "dag_id") or (
                node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            )
            if given:
                ids.append(given)
    return tuple(ids)


def _kwarg(call: ast.Call | None, name: str) -> str | None:
    for keyword in call.keywords if call else []:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    return None


def shown_dags() -> list[ShownDag]:
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            try:
                ids = _dag_ids(match[1])
            except SyntaxError:
                continue  # a fragment, not a program
            if ids:
                line = text.count("\n", 0, match.start()) + 1
                found.append(ShownDag(f"{page.relative_to(ROOT)}:{line}", match[1], ids))
    return found


def _missing(requirement: str) -> bool:
    try:
        importlib.metadata.distribution(re.sub(r"\[.*\]", "", requirement))
    except importlib.metadata.PackageNotFoundError:
        return True
    return False


LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


@pytest.fixture(scope="module")
def shown_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the ``docs-shown`` bundle: one file, the block under test."""
    return tmp_path_factory.mktemp("docs-shown")


@pytest.fixture
def docs_bundle(shown_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test DAG folder's bundle plus ``docs-shown``, so ``DAG.test()`` finds the block's DAG."""
    bundles = [
        {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
        {"name": "docs-shown", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(shown_folder)}},
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    return shown_folder


def test_the_docs_show_dags() -> None:
    """The extraction itself works: README's DAG is found (a silent zero would pass everything)."""
    assert any(dag.source.startswith("README.md") for dag in shown_dags())


@pytest.mark.parametrize("shown", shown_dags(), ids=lambda dag: dag.source)
@pytest.mark.usefixtures("airflow_db")
def test_dag_shown_in_the_docs_runs_as_shown(shown: ShownDag, docs_bundle: Path, emulator: Any) -> None:
    (docs_bundle / "shown.py").write_text(shown.code, encoding="utf-8")
    no_examples = {"include_examples": False} if _takes_include_examples() else {}
    bag = DagBag(dag_folder=str(docs_bundle), **no_examples)
    errors = "\n".join(str(error) for error in bag.import_errors.values())
    missing = [req for req in shown.needs if _missing(req)]
    if missing:
        assert errors, f"{shown.source}: loaded although {missing} is not installed"
        for requirement in missing:
            assert re.sub(r"\[.*\]", "", requirement) in errors, errors[-3000:]
        assert emulator.stats()["tasks_created"] == 0  # refused before anything was paid for
        return
    assert not errors, f"{shown.source} does not load:\n{errors[-5000:]}"
    if SYNC_BEFORE_TEST:
        _reserialize()
    for dag_id in shown.dag_ids:
        dag = bag.get_dag(dag_id)
        assert dag is not None, f"{shown.source}: no DAG {dag_id}"
        run = dag.test()
        failed = [ti.task_id for ti in run.get_task_instances() if ti.state != "success"]
        assert str(run.state) == "success" and not failed, f"{shown.source} ({dag_id}): {failed} failed"
