"""The package layout shows the architecture (docs/design.md, "Packages"): every module
lives in a subpackage named after what it is, and the subpackages depend on each other
in one direction only.

Every `import engine.x` and `from engine.x import y` counts, at module level and inside
functions alike (a function-level import is still a dependency, only a later one)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"
#: The only modules directly in engine/: the package itself, `python -m engine`, the
#: configuration and the errors every package uses, and the public Python API.
TOP_LEVEL = {"__init__", "__main__", "config", "errors", "run"}


def _node(module: str) -> str:
    """The node of the dependency graph a dotted module name belongs to: its subpackage,
    or the top-level module itself (`engine` for the package and its attributes)."""
    parts = module.split(".")
    if parts[0] != "engine":
        raise ValueError(module)
    if len(parts) == 1 or parts[1] in ("__init__", "__version__"):
        return "engine"
    return parts[1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ENGINE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(path: Path) -> set[str]:
    """The engine modules (or package attributes) that `path` imports, anywhere in it."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "engine")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # a relative import: resolve it against the importing package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "engine":
                continue
            # `from engine import run` and `from engine.x import y` where y is a submodule
            found.update(f"{module}.{alias.name}" for alias in node.names)
            found.add(module)
    return found


def dependency_graph() -> dict[str, dict[str, set[str]]]:
    """node -> node it imports -> the `importer -> imported` pairs behind that edge."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in sorted(ENGINE.rglob("*.py")):
        source = _module_name(path)
        source_node = _node(source) if path.parent != ENGINE else _node(f"engine.{path.stem}")
        graph.setdefault(source_node, {})
        for module in _imported(path):
            target = _resolve(module)
            if target is None or _node(target) == source_node:
                continue
            graph[source_node].setdefault(_node(target), set()).add(f"{source} -> {target}")
    return graph


def _resolve(name: str) -> str | None:
    """The engine module or package that the dotted `name` is (or is an attribute of)."""
    parts = name.split(".")
    while parts:
        candidate = ENGINE.parent.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return None


def _find_cycle(graph: dict[str, dict[str, set[str]]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, {})):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_packages_depend_on_each_other_without_a_cycle():
    graph = dependency_graph()
    cycle = _find_cycle(graph)
    if cycle:
        imports = [f"  {a} -> {b}: {', '.join(sorted(graph[a][b]))}" for a, b in zip(cycle, cycle[1:])]
        raise AssertionError("the engine's packages import each other in a cycle: "
                             + " -> ".join(cycle) + "\n" + "\n".join(imports))


def test_no_module_is_left_flat_in_engine():
    flat = sorted(path.stem for path in ENGINE.glob("*.py") if path.stem not in TOP_LEVEL)
    assert not flat, f"modules directly in engine/ (move each into the subpackage it belongs to): {flat}"


def test_every_subpackage_says_what_it_is_and_imports_nothing_heavy():
    for package in sorted(p for p in ENGINE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()):
        tree = ast.parse((package / "__init__.py").read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{package.name}/__init__.py has no docstring saying what the package is"
        modules = sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__")
        docstring = ast.get_docstring(tree)
        missing = [m for m in modules if not re.search(rf"\b{m}\b", docstring)]
        assert not missing, f"{package.name}/__init__.py's docstring does not list {missing}"
        if package.name == "cli":  # the console script's own code (entry point engine.cli:main)
            continue
        imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        heavy = [ast.unparse(node) for node in imports
                 if not (isinstance(node, ast.ImportFrom) and node.module in ("__future__", "types"))]
        assert not heavy, f"{package.name}/__init__.py imports at import time: {heavy}"


def test_the_layering_is_the_one_documented():
    """The order of docs/design.md's picture, lowest first: a package imports only
    packages (and top-level modules) listed before it."""
    order = ["engine", "errors", "files", "rules", "config", "sources", "execution", "outputs", "dataflow",
             "incremental", "observability", "lineage", "storage", "run", "governance", "cli", "__main__"]
    graph = dependency_graph()
    assert set(graph) <= set(order), f"packages missing from the documented order: {set(graph) - set(order)}"
    upward = [f"{a} -> {b}: {', '.join(sorted(pairs))}" for a, targets in graph.items()
              for b, pairs in targets.items() if order.index(b) > order.index(a)]
    assert not upward, "imports against the documented direction:\n" + "\n".join(upward)


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b": {"x"}}, "b": {"c": {"y"}}, "c": {"a": {"z"}}, "d": {}}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b": {"x"}}, "b": {}}) is None
