"""The package's shape: no import cycles, a schema that imports no registry, a report without training code,
a trunk that names no plugin.

- Every import of a ``prompttune`` module counts, at module level or inside a function: a function-level
  import that closes a cycle only moves the failure from import time to the first call. A cycle fails the
  test, named module by module with the line of each import.
- ``prompttune.schema`` (the typed configs) is a leaf: the prompt bases, the objectives and the model import
  their configs from it, and ``prompttune.config`` validates above the registries.
- ``import prompttune.report``, and ``prompttune report`` through the console script's entry point, import
  no torch and no training code (each in a fresh interpreter).
- Validating params (every command that reads params.yaml: ``configure``, the first stage of every pipeline
  run and of every round of ``prompttune decide``) reads the registries but imports no model code of
  transformers (``modeling_utils``: about 3 s of every such process on a 2-core CPU).
- The trunk (cost model, export, splits, data sources, claims) names no registered base, objective or task.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "prompttune"
# What the report must not load (training code), and the report itself (proof that the path was taken).
WATCHED = (
    "prompttune.report",
    "torch",
    "prompttune.train",
    "prompttune.landscape",
    "prompttune.model",
    "prompttune.bases",
    "prompttune.objectives",
    "transformers.modeling_utils",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> dict[str, int]:
    """The package modules that module ``name`` imports, anywhere in it, each with the line of its first
    import. ``from a.b import c`` imports ``a.b`` and, where it is a module, ``a.b.c``; a package that
    contains the importing module is left out (Python initialises it before any of its modules)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(f"{target}."):
                found[target] = min(found.get(target, node.lineno), node.lineno)
    return found


GRAPH = {name: imports(name) for name in MODULES}


def closure(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += GRAPH[module]
    return seen - {name}


def cycles(graph: dict[str, dict[str, int]]) -> list[tuple[list[str], list[str]]]:
    """Each strongly connected component of ``graph`` that has more than one module (Tarjan's algorithm):
    a shortest cycle from its first module back to it, and every module of it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = [stack.pop()]
            while component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                components.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return [(shortest_cycle(graph, component[0], set(component)), component) for component in components]


def shortest_cycle(graph: dict[str, dict[str, int]], start: str, inside: set[str]) -> list[str]:
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for target in graph[module]:
            if target == start:
                path = [module]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if target in inside and target not in previous:
                previous[target] = module
                queue.append(target)
    raise AssertionError(f"{start} is in a strongly connected component but on no cycle")


def describe(graph: dict[str, dict[str, int]], cycle: list[str], component: list[str]) -> str:
    steps = [f"{a} (line {graph[a][b]}) → {b}" for a, b in zip(cycle, cycle[1:], strict=False)]
    return (
        f"import cycle: {'; '.join(steps)} — one of the cycles among {len(component)} modules: "
        f"{', '.join(component)}"
    )


def test_the_package_has_no_import_cycle() -> None:
    found = cycles(GRAPH)
    assert not found, "\n".join(describe(GRAPH, *each) for each in found)


def test_a_cycle_is_found_and_named_with_its_import_lines() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 2, "d": 3}, "c": {"a": 4}, "d": {}, "e": {"a": 5}}
    assert cycles(graph) == [(["a", "b", "c", "a"], ["a", "b", "c"])]
    assert describe(graph, *cycles(graph)[0]) == (
        "import cycle: a (line 1) → b; b (line 2) → c; c (line 4) → a — one of the cycles among 3 modules: "
        "a, b, c"
    )
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_the_schema_imports_nothing_of_the_package_but_its_errors() -> None:
    assert closure("prompttune.schema") == {"prompttune.errors"}


def test_bases_objectives_and_model_take_their_configs_from_the_schema() -> None:
    for name in MODULES:
        if name.startswith(("prompttune.bases", "prompttune.objectives")) or name == "prompttune.model":
            assert "prompttune.config" not in GRAPH[name], f"{name} imports prompttune.config"


def loaded_after(code: str, *args: str) -> set[str]:
    """Which of ``WATCHED`` a fresh interpreter has loaded after running ``code`` (``sys.argv[1:]``: args),
    however it exits."""
    prologue = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('LOADED', *[m for m in {WATCHED!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", prologue + code, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("LOADED")]
    assert lines, proc.stderr
    return set(lines[0].split()[1:])


def test_importing_the_report_imports_no_torch() -> None:
    assert loaded_after("import prompttune.report") == {"prompttune.report"}


def test_the_report_command_imports_no_torch(tmp_path: Path) -> None:
    """``prompttune report`` through the console script's entry point (``prompttune.cli:main``), as far as
    reading the grid record: a missing one, an error after the command's imports."""
    code = (
        "from prompttune.cli import main\n"
        "sys.argv = ['prompttune', 'report', '--grid', sys.argv[1], '--results', sys.argv[2]]\n"
        "main()\n"
    )
    assert loaded_after(code, str(tmp_path / "grid.json"), str(tmp_path)) == {"prompttune.report"}


def test_validating_params_imports_no_model_code() -> None:
    code = (
        "from pathlib import Path\n"
        "from prompttune.config import load_params\n"
        "load_params(Path('params.yaml'))\n"
    )
    loaded = loaded_after(code)
    assert "prompttune.objectives" in loaded, "the registries were read"
    assert "transformers.modeling_utils" not in loaded


# The trunk modules that read plugins only through their declarations, and the names each may use: the
# claims select arms by the papers' method families, which are names of the families, not of a plugin.
TRUNK = {
    "prompttune/cost.py": set(),
    "prompttune/export.py": set(),
    "prompttune/splits.py": set(),
    "prompttune/data/sources.py": set(),
    "prompttune/data/fetch.py": set(),
    "prompttune/claims.py": {"infoprompt"},
}


def test_the_trunk_names_no_registered_base_objective_or_task() -> None:
    """No string in the code (docstrings aside) of the cost model, the export, the splits, the data sources
    or the claims is the name of a registered base, objective or task: each reads the declarations."""
    from prompttune.bases import BASES
    from prompttune.objectives import OBJECTIVES
    from prompttune.tasks import TASKS

    names = {*BASES.names(), *OBJECTIVES.names(), *TASKS.names()}
    for relative, allowed in TRUNK.items():
        tree = ast.parse((ROOT / relative).read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        named = sorted(
            (node.lineno, node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and node.value in names - allowed
        )
        assert not named, f"{relative} names {named}"
