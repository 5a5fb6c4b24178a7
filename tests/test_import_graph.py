"""The package's import graph (issue 13): no circle, dependencies point down, rclpy only in ros/.

Read from the sources with `ast` (every import statement, function-local ones included: a circle
closed by a function-local import is still a circle).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "drl_control"
# what each layer may import from the package (besides itself and the base modules)
# (ros.names: the topic names, pure strings, also named by the recordings record/ writes)
BASE = {"drl_control", "drl_control.errors", "drl_control.paths", "drl_control.safe_io", "drl_control.ros",
        "drl_control.ros.names"}
MAY_IMPORT = {
    "robot": set(),
    "sim": {"robot"},
    "deploy": {"robot", "sim"},
    "record": {"robot", "sim", "deploy"},
    "learn": {"robot", "sim", "deploy", "record"},
    "viz": {"robot", "record"},
    "ros": {"robot", "sim", "deploy", "learn", "record", "viz"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        graph[name] = found
    modules = set(graph)
    return {m: {i for i in found if i in modules and i != m} for m, found in graph.items()} | {
        f"{m}#external": {i for i in found if not i.startswith("drl_control")} for m, found in graph.items()}


def test_no_import_circle() -> None:
    graph = {m: deps for m, deps in _imports().items() if not m.endswith("#external")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(graph[m]):
            if m.startswith(dep + "."):
                continue  # a package's __init__ runs before its submodules: not a dependency of them
            if state.get(dep) == 1:
                raise AssertionError("import circle: " + " -> ".join([*stack[stack.index(dep):], dep]))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_layers_point_down_and_only_ros_imports_rclpy() -> None:
    graph = _imports()
    for module, deps in graph.items():
        if module.endswith("#external"):
            layer = module.removesuffix("#external").split(".")[1:2]
            if any(d.split(".")[0] == "rclpy" for d in deps):
                assert layer == ["ros"], f"{module.removesuffix('#external')} imports rclpy"
            continue
        parts = module.split(".")
        if len(parts) < 3 or parts[1] not in MAY_IMPORT:
            continue
        for dep in deps - BASE:
            dep_layer = dep.split(".")[1]
            assert dep_layer == parts[1] or dep_layer in MAY_IMPORT[parts[1]], f"{module} imports {dep} (upward)"
    for base in BASE - {"drl_control"}:
        assert not graph[base] - BASE, f"{base} must import nothing of the package but the base modules"
