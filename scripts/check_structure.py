"""Check the package's shape (issue 10): no import cycle among module-level imports within the package,
no module over ``--max-module`` lines, no class over ``--max-class`` lines.

Imports under ``if TYPE_CHECKING:`` and inside functions are left out: they do not run at import time,
so they cannot make a cycle. Importing ``a.b.c`` counts as importing ``a`` and ``a.b`` too (Python runs
their ``__init__`` first), except a module's own parent packages, which are already initialising.
``python scripts/check_structure.py``; exit status 1 when something is over.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = "airflow_openai_files"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_imports(tree: ast.Module, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """Package modules imported at module level (``try``/``if`` bodies included, TYPE_CHECKING excluded)."""
    found: set[str] = set()
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If):
            if not _is_type_checking(node):
                stack.extend(node.body)
            stack.extend(node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend([*node.body, *node.orelse, *node.finalbody])
            for handler in node.handlers:
                stack.extend(handler.body)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    result = set()
    for target in found:
        # importing a.b.c runs a and a.b first
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            # a module's own parent packages are already initialising when it runs: not an edge
            if candidate in modules and candidate != name and not name.startswith(candidate + "."):
                result.add(candidate)
    return result


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--max-module", type=int, default=400)
    parser.add_argument("--max-class", type=int, default=250)
    args = parser.parse_args(argv)
    root = Path(args.root)
    files = sorted((root / PACKAGE).rglob("*.py"))
    names = {module_name(f, root): f for f in files}
    graph: dict[str, set[str]] = {}
    problems = 0
    for name, path in names.items():
        text = path.read_text()
        tree = ast.parse(text)
        graph[name] = module_imports(tree, name, path.name == "__init__.py", set(names))
        lines = len(text.splitlines())
        if lines > args.max_module:
            print(f"module {name}: {lines} lines (> {args.max_module})")
            problems += 1
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > args.max_class:
                    print(f"class {name}.{node.name}: {size} lines (> {args.max_class})")
                    problems += 1
    for cycle in find_cycles(graph):
        print(f"import cycle: {' <-> '.join(cycle)}")
        problems += 1
    print(f"{len(names)} modules checked; {problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
