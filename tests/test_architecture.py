"""The layers of the package, read from its source: no import cycle, and each layer imports
only the layers below it.

Every ``import`` counts, wherever it stands: at the top, inside a function, or under ``if
TYPE_CHECKING:`` (a cycle a type checker needs is still a cycle a reader has to hold in mind).
``from midway.x import y`` is an import of the module ``midway.x.y`` when ``y`` is a
submodule, else of ``midway.x``. A module's layer is its first name under ``midway``
(``midway.run.engine`` is in ``run``); ``midway`` alone is the package's public front.

The layers, from the bottom::

    errors                       imports nothing of midway
    _model                       the data: errors
    console, faults              small utilities: errors, _model
    stores, sources              _model, errors, faults, console (never the run core)
    run                          one run of one job: the above (never job, distributed, screens)
    distributed                  the plan and the worker loop: the above and run (never job)
    views                        typed read models: _model, stores, errors, console
    ops                          the operator's API (status, items, retry...): views, stores,
                                 _model, errors, console
    job                          Job, Loop: the only importer of run and distributed; ops
    midway (__init__)            the public names: errors, _model, sources, job, run, ops
    cli, each, web               the screens: views, ops, stores, the public API (midway), and
                                 errors, _model, sources, console, faults; each other
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

_BASE = frozenset({"errors", "_model", "faults", "console"})
_BELOW_RUN = _BASE | {"stores", "sources"}
_SCREENS = frozenset({"cli", "each", "web"})


@dataclass(frozen=True)
class Rule:
    may_import: frozenset[str]
    says: str


RULES: dict[str, Rule] = {
    "errors": Rule(frozenset(), "errors imports nothing of midway"),
    "_model": Rule(frozenset({"errors"}), "_model imports only errors and _model"),
    "console": Rule(frozenset({"errors", "_model"}), "console imports only errors and _model"),
    "faults": Rule(frozenset({"errors", "_model"}), "faults imports only errors and _model"),
    "stores": Rule(
        _BASE, "stores import only _model, errors, faults, console and stores (never run, job)"
    ),
    "sources": Rule(
        _BASE, "sources import only _model, errors, faults, console and sources (never run, job)"
    ),
    "run": Rule(
        _BELOW_RUN,
        "run never imports job, distributed, cli, each, web, views (job hands a run what it needs)",
    ),
    "distributed": Rule(
        _BELOW_RUN | {"run"}, "distributed never imports job (job passes in what it needs)"
    ),
    "job": Rule(
        _BELOW_RUN | {"run", "distributed", "ops"},
        "job never imports the screens or views (its operator methods go through ops)",
    ),
    "midway": Rule(
        frozenset({"errors", "_model", "sources", "job", "run", "ops"}),
        "the package front imports only what it re-exports: errors, _model, sources, job, run, ops",
    ),
    "views": Rule(
        frozenset({"_model", "stores", "errors", "console"}),
        "views import only _model, stores, errors, console",
    ),
    "ops": Rule(
        frozenset({"_model", "stores", "errors", "console", "views"}),
        "ops (the operator's API) reads through views and acts through stores, never a run",
    ),
    **{
        screen: Rule(
            _BELOW_RUN | _SCREENS | {"views", "ops", "midway"},
            f"{screen} reads through views, stores and the public API (midway), never run, "
            "distributed or job (job is the only importer of run and distributed)",
        )
        for screen in _SCREENS
    },
    "__main__": Rule(frozenset({"cli"}), "__main__ only starts the command line"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((SRC / "midway").rglob("*.py"))}


def imported_names(path: Path, name: str) -> Iterator[tuple[str, int]]:
    """Each module of midway that the file at ``path`` (module ``name``) imports, with the
    line: wherever the import stands, functions and ``if TYPE_CHECKING:`` included."""
    known = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..x import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in known else base), node.lineno


@cache
def import_graph() -> dict[str, dict[str, int]]:
    """``{module: {module it imports: line}}`` for every module of midway."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules().items():
        edges: dict[str, int] = {}
        for imported, line in imported_names(path, name):
            if imported.partition(".")[0] == "midway" and imported != name:
                edges.setdefault(imported, line)
        graph[name] = edges
    return graph


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "midway"


def where(importer: str, imported: str) -> str:
    path = modules()[importer].relative_to(SRC)
    return f"{path}:{import_graph()[importer][imported]}"


def layer_violations() -> dict[tuple[str, str], str]:
    """``{(importer, imported): the rule it breaks}``."""
    found = {}
    for importer, edges in import_graph().items():
        layer = layer_of(importer)
        rule = RULES.get(layer)
        assert rule is not None, f"{importer}: layer {layer!r} has no rule in RULES; add one"
        for imported in edges:
            other = layer_of(imported)
            if other != layer and other not in rule.may_import:
                found[(importer, imported)] = rule.says
    return found


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or not (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def one_cycle(group: list[str]) -> list[str]:
    """A shortest way round from the group's first module back to it, to name in a message."""
    graph, start = import_graph(), group[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node]):
                if nxt == start:
                    return [*paths[node], start]
                if nxt in group and nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{group} holds no cycle")


def describe_cycle(group: list[str]) -> str:
    """The cycle, each step with the line that imports; then the group's other imports."""
    cycle = one_cycle(group)
    steps = list(itertools.pairwise(cycle))
    others = [
        (a, b) for a in group for b in import_graph()[a] if b in group and (a, b) not in steps
    ]
    lines = [f"  {a} imports {b} ({where(a, b)})" for a, b in steps]
    lines += [f"  and {a} imports {b} ({where(a, b)})" for a, b in others]
    return f"import cycle among {', '.join(group)}:\n" + "\n".join(lines)


def test_the_graph_is_read() -> None:
    """The reading itself: relative, nested and TYPE_CHECKING imports are all found."""
    graph = import_graph()
    assert len(graph) > 50
    assert "midway.errors" in graph["midway"]
    assert "midway.job" in graph["midway"]
    assert "midway.sources" in graph["midway"]  # `from midway import sources`: a submodule
    assert "midway.stores.sqlite" in graph["midway.stores"]  # imported inside a function


def test_no_import_cycle() -> None:
    groups = strongly_connected(import_graph())
    assert not groups, "\n".join(describe_cycle(group) for group in groups)


def test_layers() -> None:
    broken = [
        f"{importer} imports {imported} ({where(importer, imported)}): breaks '{rule}'"
        for (importer, imported), rule in sorted(layer_violations().items())
    ]
    assert not broken, "\n".join(broken)


def test_every_layer_has_a_rule() -> None:
    layers = {layer_of(module) for module in modules()}
    assert layers <= set(RULES), sorted(layers - set(RULES))


def test_a_cycle_and_a_layer_break_are_found() -> None:
    """The checks can fail: a made-up graph with a cycle of three and one without."""
    graph = {
        "midway.run.a": {"midway.run.b": 1},
        "midway.run.b": {"midway.run.c": 2},
        "midway.run.c": {"midway.run.a": 3},
        "midway.stores.d": {"midway.run.a": 4},
    }
    assert strongly_connected(graph) == [["midway.run.a", "midway.run.b", "midway.run.c"]]
    del graph["midway.run.c"]["midway.run.a"]
    assert strongly_connected(graph) == []
    assert "run" not in RULES["stores"].may_import
