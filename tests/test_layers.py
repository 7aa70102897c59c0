"""The packages import one way, from the commands down to the protocol core (protocol/__init__.py):
every import in the project's code, at the top of a module or inside a function, is read here."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# bottom first: a package may import only from the packages before it (and itself)
LAYERS = ["protocol", "extractors", "recommenders", "harness"]


def imports() -> dict[str, set[str]]:
    """Every project module and the project modules it imports (whole names, as written)."""
    found = {}
    for package in LAYERS:
        for path in (REPO / package).rglob("*.py"):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            targets = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    targets |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
                elif isinstance(node, ast.Import):
                    targets |= {a.name for a in node.names}
            found[module] = {t for t in targets if t.split(".")[0] in LAYERS}
    return found


def resolve(name: str, modules: set[str]) -> str | None:
    """The project module an imported name lives in (`pkg.mod.Class` -> `pkg.mod`)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_every_import_runs_down_the_layers():
    upward = [f"{module} imports {target}" for module, targets in imports().items() for target in targets
              if LAYERS.index(target.split(".")[0]) > LAYERS.index(module.split(".")[0])]
    assert not upward, "\n".join(sorted(upward))


def test_no_package_imports_itself_in_a_circle():
    graph = imports()
    modules = set(graph)
    edges = {m: {r for t in ts if (r := resolve(t, modules)) and r != m and not m.startswith(r + ".")
                 and r.split(".")[0] == m.split(".")[0]}
             for m, ts in graph.items()}
    state, path = {}, []

    def visit(module):  # depth-first: a module met again while still on the path closes a circle
        state[module] = "open"
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                pytest.fail("import circle: " + " -> ".join(path[path.index(target):] + [target]))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module)


def test_the_layers_are_the_project_packages():
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert packages == set(LAYERS)
