"""The package's layers import only downwards, read from the source (every import, even local ones).

From the bottom: ``get_provider_info`` (imports nothing of the package); ``exceptions``, ``assets``
and ``links``; ``models`` (the pure core) and ``storage`` (file writes); ``utils``; ``hooks`` (all
HTTP); ``triggers``; ``sensors`` and ``operators``; ``plugins`` (the UI) beside them. The emulator
stands apart: it imports nothing of the client, so it cannot agree with the client's parsing by
sharing it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import airflow_provider_gptproto

PACKAGE = "airflow_provider_gptproto"
ROOT = Path(airflow_provider_gptproto.__file__).parent
TASK_LAYERS = {"operators", "sensors", "triggers", "plugins"}

# Each layer, and the sub-packages of this package it may not import.
FORBIDDEN: dict[str, set[str]] = {
    "exceptions": {"models", "storage", "utils", "hooks", "links", "emulator", *TASK_LAYERS},
    "assets": {"models", "storage", "utils", "hooks", "links", "emulator", *TASK_LAYERS},
    "links": {"models", "storage", "utils", "hooks", "emulator", *TASK_LAYERS},
    "models": {"storage", "utils", "hooks", "links", "emulator", *TASK_LAYERS},
    "storage": {"models", "utils", "hooks", "links", "emulator", *TASK_LAYERS},
    "utils": {"hooks", "emulator", *TASK_LAYERS},
    "hooks": {"links", "emulator", *TASK_LAYERS},
    "triggers": {"operators", "sensors", "plugins", "emulator"},
    "sensors": {"operators", "plugins", "emulator"},
    "operators": {"sensors", "plugins", "emulator"},
    "plugins": {"hooks", "operators", "sensors", "triggers", "emulator"},
}
# What Airflow's ProvidersManager reads, importing nothing else of the package.
FORBIDDEN["get_provider_info"] = {"exceptions", "assets", *FORBIDDEN["exceptions"]}


def _layer(module: str) -> str:
    """``airflow_provider_gptproto.hooks._wire`` -> ``hooks``; ``...exceptions`` -> ``exceptions``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module of this package ``path`` imports, relative imports resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            # "from pkg import sub" imports the sub-module: count it as such.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def _sources(layer: str) -> list[Path]:
    folder = ROOT / layer
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [ROOT / f"{layer}.py"]


def test_every_layer_and_module_is_known() -> None:
    """A new sub-package or top-level module must be placed in the layers here before it is used."""
    on_disk = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert on_disk == {
        "emulator",
        "hooks",
        "links",
        "models",
        "operators",
        "plugins",
        "sensors",
        "storage",
        "triggers",
        "utils",
    }
    modules = {p.stem for p in ROOT.glob("*.py") if p.name != "__init__.py"}
    assert modules == {"assets", "exceptions", "get_provider_info"}
    assert set(FORBIDDEN) == (on_disk | modules) - {"emulator"}  # every layer and module is checked
    assert all(path.exists() for layer in FORBIDDEN for path in _sources(layer))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    wrong = [
        f"{_module_name(path)} imports {target}"
        for path in _sources(layer)
        for target in sorted(_imports(path))
        if _layer(target) in FORBIDDEN[layer]
    ]
    assert wrong == []


def test_the_emulator_imports_nothing_of_the_client() -> None:
    wrong = [
        f"{_module_name(path)} imports {target}"
        for path in _sources("emulator")
        for target in sorted(_imports(path))
        if _layer(target) != "emulator"
    ]
    assert wrong == []
