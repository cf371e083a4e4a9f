"""Check the package's shape: its layers and its import cycles. ``python scripts/check_structure.py``
prints every problem and exits 1 when there is one (``--graph`` prints the import graph instead).

Layers (a module may import its own layer and those its rule leaves open)::

    limits                    the standard library and resources/ only (checked with every import, below)
    exceptions                limits and _compat: everyone imports them
    _compat                   the Airflow version shims; not for resources/ (no Airflow there)
    resources/                pure rules per resource: the standard library, limits and each other only
    client/                   not hooks, operators, sensors, triggers
    hooks/                    not operators, sensors, triggers
    operators/, sensors/, triggers/
    emulator/                 nothing outside it imports it; it imports of the package only resources/,
                              validation/, exceptions and limits, and never ``airflow`` itself
    the rest                  transfer/, validation/, resume, results, ...: not hooks, operators,
                              sensors, triggers (they serve the hooks and the operators)

The emulator stands for the service. It shares the service's documented rules with the client
(``resources/``, and ``validation/``: what the service refuses in a JSONL file), never the client's
code: an emulator that imported the transport or a hook would agree with the client's bugs and the
tests against it would prove nothing.

``resources/`` and ``limits`` are the service's vocabulary, read by the client, the worker, the triggerer
and the emulator's subprocess (which must not load Airflow): every import they make, third-party ones
included, must be the standard library's or one of theirs (``exceptions`` is not: it loads Airflow
through ``_compat``).

What counts as an import:

- ``if TYPE_CHECKING:`` imports do not count: they never run, and a type-only reference is not a
  dependency of the code (annotations are strings under ``from __future__ import annotations``).
- Lazy imports (inside a function) count for the layering rule like module-level ones: a lazy
  import across layers is still a dependency, only a hidden one; hiding it is not allowed.
- Lazy imports count for cycles too: module A importing B at module level while B imports A inside a
  function is still a loop of dependencies (neither can be understood, tested or moved without the
  other), and it fails at run time as soon as the function runs while A is still initialising (a
  module-level ``__getattr__`` re-export, a decorator or default evaluated at import time: the lazy
  ``_io`` re-export this package once had was exactly that). A package lazily importing its own
  submodule (``emulator/__init__``'s ``__getattr__``) makes no edge back: the submodule's import of
  its parent is not an edge (below), because Python has initialised the parent first.
- Importing ``a.b.c`` counts as importing ``a`` and ``a.b`` too (Python runs their ``__init__``
  first), except a module's own parent packages, which are already initialising, and the root
  package, which everyone's import runs.

Module and class line counts are not checked: a module is split where its concepts part, not at a
line count (a cap forced splits by size that scattered one concept over several files).
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "airflow_openai_files"

#: (prefix, layer) in match order: the first prefix a module name equals or starts with wins.
LAYERS: tuple[tuple[str, str], ...] = (
    (f"{PACKAGE}.exceptions", "base"),
    (f"{PACKAGE}.limits", "limits"),
    (f"{PACKAGE}._compat", "compat"),
    (f"{PACKAGE}.resources", "resources"),
    (f"{PACKAGE}.validation", "validation"),
    (f"{PACKAGE}.client", "client"),
    (f"{PACKAGE}.hooks", "hooks"),
    (f"{PACKAGE}.operators", "tasks"),
    (f"{PACKAGE}.sensors", "tasks"),
    (f"{PACKAGE}.triggers", "tasks"),
    (f"{PACKAGE}.emulator", "emulator"),
)
ALL_LAYERS = frozenset(
    {"base", "limits", "compat", "resources", "validation", "client", "middle", "hooks", "tasks", "emulator"}
)
#: What each layer must not import (a module of the package not in LAYERS is "middle").
FORBIDDEN: dict[str, frozenset[str]] = {
    "base": ALL_LAYERS - {"base", "limits", "compat"},
    "limits": ALL_LAYERS - {"limits", "resources"},
    "compat": ALL_LAYERS - {"base", "limits", "compat"},
    "resources": ALL_LAYERS - {"limits", "resources"},
    "validation": frozenset({"hooks", "tasks", "emulator"}),
    "client": frozenset({"hooks", "tasks", "emulator"}),
    "middle": frozenset({"hooks", "tasks", "emulator"}),
    "hooks": frozenset({"tasks", "emulator"}),
    "tasks": frozenset({"emulator"}),
    "emulator": frozenset({"compat", "client", "middle", "hooks", "tasks"}),
}
#: Layers whose every import (lazy ones too, third-party ones too) must be the standard library's or
#: one of the package's modules their layer allows.
STDLIB_ONLY = frozenset({"limits", "resources"})
#: Third-party top-level packages a layer must never import (the emulator stands for the service and
#: runs in a subprocess without Airflow).
FORBIDDEN_THIRD_PARTY: dict[str, frozenset[str]] = {"emulator": frozenset({"airflow"})}
#: The root package (``__init__``: version, provider metadata) is the parent of everyone.
ROOT = PACKAGE


def layer_of(module: str) -> str:
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return "root" if module == ROOT else "middle"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    lazy: bool


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


def _raw_imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it runs lazily (inside a function); TYPE_CHECKING left out."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []
    stack: list[tuple[ast.AST, bool]] = [(node, False) for node in tree.body]
    while stack:
        node, lazy = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend((child, lazy) for child in node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append((node, lazy))
            continue
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))
    return found


def module_imports(tree: ast.Module, name: str, is_package: bool, modules: set[str]) -> list[Edge]:
    """The package modules ``name`` imports, each with the line and whether the import is lazy."""
    edges: dict[tuple[str, bool], Edge] = {}
    for node, lazy in _raw_imports(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if candidate not in modules or candidate == ROOT:
                    continue
                # a module's own parent packages are already initialising when it runs: not an edge
                if candidate == name or name.startswith(candidate + "."):
                    continue
                key = (candidate, lazy)
                if key not in edges:
                    edges[key] = Edge(name, candidate, node.lineno, lazy)
    return sorted(edges.values(), key=lambda e: (e.target, e.lazy))


def layer_problems(edges: list[Edge]) -> list[str]:
    problems = []
    for edge in edges:
        source, target = layer_of(edge.source), layer_of(edge.target)
        if source == "root" or target in ("root", source):
            continue
        if target in FORBIDDEN.get(source, frozenset()):
            how = "lazily " if edge.lazy else ""
            problems.append(
                f"layering: {edge.source} ({source}) {how}imports {edge.target} ({target}), line {edge.line}"
            )
    return problems


def external_problems(root: Path) -> list[str]:
    """Imports of modules outside the package by the layers that restrict them (see STDLIB_ONLY)."""
    problems = []
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        name = module_name(path, root)
        layer = layer_of(name)
        if layer not in STDLIB_ONLY and layer not in FORBIDDEN_THIRD_PARTY:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, lazy in _raw_imports(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                continue  # relative: inside the package, judged by the layering rule
            targets = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for target in targets:
                top = target.split(".")[0]
                if top == PACKAGE:
                    continue
                how = "lazily " if lazy else ""
                if layer in STDLIB_ONLY and top not in stdlib:
                    problems.append(f"not standard library: {name} ({layer}) {how}imports {target}, line {node.lineno}")
                elif top in FORBIDDEN_THIRD_PARTY.get(layer, frozenset()):
                    problems.append(f"forbidden import: {name} ({layer}) {how}imports {target}, line {node.lineno}")
    return problems


def cycle_graph(edges: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set())
        graph.setdefault(edge.target, set())
        graph[edge.source].add(edge.target)
    return graph


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


def collect(root: Path) -> list[Edge]:
    files = sorted((root / PACKAGE).rglob("*.py"))
    names = {module_name(f, root): f for f in files}
    edges: list[Edge] = []
    for name, path in names.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges.extend(module_imports(tree, name, path.name == "__init__.py", set(names)))
    return edges


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--graph", action="store_true", help="print the import edges and exit")
    args = parser.parse_args(argv)
    edges = collect(Path(args.root))
    if args.graph:
        for edge in edges:
            print(f"{edge.source} -> {edge.target}{' (lazy)' if edge.lazy else ''}")
        return 0
    problems = layer_problems(edges) + external_problems(Path(args.root))
    graph = cycle_graph(edges)
    for cycle in find_cycles(graph):
        members = set(cycle)
        links = sorted(
            f"{e.source} -> {e.target}{' (lazy)' if e.lazy else ''}"
            for e in edges
            if e.source in members and e.target in members and e.target in graph[e.source]
        )
        problems.append(f"import cycle: {' <-> '.join(cycle)}\n    " + "\n    ".join(links))
    for problem in problems:
        print(problem)
    print(f"{len(graph)} modules, {len(edges)} imports checked; {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
