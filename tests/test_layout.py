"""The house rules of shared/DESIGN.md, checked on the source: arrows point one way, no circles.

``rl -> rewards -> zoomin`` and ``rl -> zoomin``: ``zoomin`` names neither ``rl`` nor ``rewards``
(not in an import, not in a string handed to importlib), ``rewards`` imports neither ``rl``, TRL
nor transformers, and the modules of each package import each other without a cycle, counting
imports inside functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("zoomin", "rewards", "rl")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file, plus module names given as string
    constants to ``importlib.import_module`` or ``__import__``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else f"{path.parent.name}.{node.module}"
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            found.update(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return found


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in {"import_module", "__import__"}


def _top(name: str) -> str:
    return name.split(".")[0]


def _modules(package: str, inits: bool = False) -> dict[str, Path]:
    """Every module of ``package`` by dotted name, subpackages included; with ``inits`` also the
    ``__init__`` of each subpackage (a re-exporting facade: checked for arrows, not for cycles)."""
    found = {}
    for path in sorted((REPO / package).rglob("*.py")):
        parts = path.relative_to(REPO / package).with_suffix("").parts
        if parts[-1] == "__init__" and (not inits or len(parts) == 1):
            continue
        found[".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))] = path
    return found


@pytest.mark.parametrize(("package", "forbidden"), [
    ("zoomin", {"rl", "rewards"}),
    ("rewards", {"rl", "trl", "transformers"}),
])
def test_arrows_point_one_way(package, forbidden):
    offenders = {
        name: sorted(i for i in _imports(path) if _top(i) in forbidden)
        for name, path in {**_modules(package, inits=True), f"{package}": REPO / package / "__init__.py"}.items()
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_no_string_in_zoomin_names_a_higher_package():
    """Covers lookups the import check cannot see, such as a name built for ``importlib`` elsewhere."""
    for path in (REPO / "zoomin").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not node.value.startswith(("rl.", "rewards.")), f"{path.name}: {node.value!r}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_inside_a_package(package):
    modules = _modules(package)
    graph = {name: {m for m in modules if any(i == m or i.startswith(m + ".") for i in _imports(path))} - {name}
             for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != "open", f"import cycle: {' -> '.join([*trail, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_the_checker_sees_dynamic_and_nested_imports(tmp_path):
    """The checks above could pass by seeing nothing; this one shows what they see."""
    source = tmp_path / "probe.py"
    source.write_text("import importlib\n\ndef f():\n    from rl.export import export\n"
                      "    return importlib.import_module('rewards.boxes')\n")
    assert {"rl.export", "rewards.boxes"} <= _imports(source)
