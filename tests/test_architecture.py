"""The package's shape, checked: no import circles, modules and classes of a readable size, no private
names crossing modules, pytest internals only in ``pytest_compat``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_pai_judge"
MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 350
LONG_BY_DESIGN = {"verdict.py"}
"""The reply parser: one job (reply text -> Verdict), many phrasings."""
STDLIB_PRIVATE_OK = {("sys", "_getframe")}
"""CPython's documented way to walk the caller's frames (call sites of held assertions)."""


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Package modules ``module`` imports, lazily or not; ``if TYPE_CHECKING:`` blocks do not count."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(module, path.name == "__init__.py", node)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module and target.startswith("pytest_pai_judge"):
                found.add(target)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    known = modules()
    graph = {m: imports_of(m, p, known) for m, p in known.items()}
    cycles = []

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in stack:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in done:
                visit(nxt, stack + [nxt], done)
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start], done)
    # A package's __init__ re-exporting its submodules is not a circle of jobs.
    cycles = [c for c in cycles if not any(c.startswith(f"{p} -> {p}.") for p in known)]
    assert not cycles, "\n".join(sorted(set(cycles)))


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_and_class_sizes(name: str) -> None:
    path = modules()[name]
    lines = path.read_text(encoding="utf-8").count("\n")
    if path.name not in LONG_BY_DESIGN:
        assert lines <= MAX_MODULE_LINES, f"{name}: {lines} lines"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"{name}.{node.name}: {size} lines"


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_private_name_crosses_a_module(name: str) -> None:
    """``from x import _y`` and ``obj._y`` (other than self / cls) stay inside the module that owns ``_y``;
    pytest's private names are used in ``pytest_compat`` only."""
    path = modules()[name]
    problems = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            problems += [f"line {node.lineno}: from {node.module} import {a.name}" for a in node.names
                         if a.name.startswith("_") and not a.name.startswith("__")]
            if (node.module or "").startswith("_pytest") and path.name != "pytest_compat.py":
                problems.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Name) and (owner.id, node.attr) in STDLIB_PRIVATE_OK:
                continue
            if path.name == "pytest_compat.py":
                continue
            problems.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Import) and path.name != "pytest_compat.py":
            problems += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.startswith("_pytest")]
    assert not problems, f"{name}:\n" + "\n".join(problems)
