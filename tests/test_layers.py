"""svge's packages form layers that only point down, and no two packages or files import each other.

Bottom to top (docs/design.md draws the same):

    errors, arch, artifacts, memory   what every layer speaks: errors, cells, stored artefacts' types
    spaces                            per-space facts (vocabulary, hash, text, enumeration)
    storage                           every file svge reads or writes
    console                           the terminal: progress, tables, one-line messages
    networks                          a cell's benchmark network, its counts and zero-cost proxies
    model                             the VAE, its heads and the predictors built on it
    training, evaluation              fitting and judging models
    search, explore                   what users run on a trained model
    commands, cli                     the Click layer

Every import of `svge_cli` is checked, at module level and inside functions alike (a deferred import is
still a dependency). Files of one package may import each other, but not in a circle at module level.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import svge_cli

ROOT = Path(svge_cli.__file__).parent
LAYERS = [
    {"__init__", "errors", "arch", "artifacts", "atomic", "memory", "train_config", "pretrained"},
    {"spaces"},
    {"storage"},
    {"console"},
    {"networks"},
    {"model"},
    {"training", "evaluation"},
    {"search", "explore"},
    {"commands", "cli", "__main__"},
]
LEVEL = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported svge_cli module, at module level) for every import in a file."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found += [(node.lineno, n, id(node) in top) for n in names if n.split(".")[0] == "svge_cli"]
    return found


def _unit(module: str) -> str:
    """The layer unit of a module: its first-level package, or the file for top-level modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _all_imports() -> list[tuple[str, int, str, bool]]:
    """(importing module, line, imported module, at module level), attributes resolved to their module."""
    modules = {_module_name(p) for p in ROOT.rglob("*.py")}
    rows = []
    for path in sorted(ROOT.rglob("*.py")):
        for line, target, top in _imports(path):
            rows.append((_module_name(path), line, _known(target, modules), top))
    return rows


def _known(target: str, modules: set[str]) -> str | None:
    """The svge_cli module an import names (`from pkg import name` may name a module or an attribute)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def test_every_import_points_down_or_sideways() -> None:
    upward = []
    for module, line, target, _ in _all_imports():
        here, there = _unit(module), _unit(target)
        assert here in LEVEL and there in LEVEL, f"{module} or {target} has no layer: add it to LAYERS"
        if LEVEL[there] > LEVEL[here]:
            upward.append(f"{module}:{line} -> {target}")
    assert not upward, "imports from a lower layer up:\n" + "\n".join(sorted(set(upward)))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return trail[trail.index(nxt) :] + [node, nxt] if nxt in trail else [node, nxt]
            if nxt not in state and (found := visit(nxt, trail + [node])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_no_two_packages_import_each_other() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, _, target, _ in _all_imports():
        if _unit(module) != _unit(target):
            graph[_unit(module)].add(_unit(target))
    assert _cycle(graph) is None, f"packages in a circle: {' -> '.join(_cycle(graph))}"


def test_no_module_level_circle_between_files() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, _, target, top in _all_imports():
        if top and target != module and not module.startswith(target + "."):
            graph[module].add(target)
    assert _cycle(graph) is None, f"files in a circle at import time: {' -> '.join(_cycle(graph))}"


def test_the_checker_sees_function_level_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from svge_cli.commands import bo\n")
    assert _imports(f) == [(2, "svge_cli.commands", False), (2, "svge_cli.commands.bo", False)]
