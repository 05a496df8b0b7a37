"""The house rules of src/trainwell, read from the source with ast: imports run one way, modules stay small.

The layers, bottom to top, are those of docs/architecture.md. A module may import modules of its own layer
or of a lower one, never of a higher one, and no two modules may import each other, directly or through
others (type-only imports count too: a cycle is a cycle for the reader even when Python survives it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "trainwell"

# Bottom to top. A key is a module or a package (all its modules); the longest matching key wins, so
# callbacks.base (the protocol the loop calls) sits below the engine while the callbacks sit above it.
LAYERS: list[tuple[str, ...]] = [
    ("utils", "version"),
    ("distributed", "storage", "losses", "optimizers"),
    ("metrics", "callbacks.base"),
    ("data",),
    ("engine",),
    ("callbacks",),
    ("model",),
    ("tools",),
    ("experiment",),
    ("integrations",),
    ("search",),
    ("compat", "framework"),
    ("cli", "__main__"),
]
RANKS = {f"trainwell.{key}": rank for rank, keys in enumerate(LAYERS) for key in keys}
TOP = len(LAYERS)  # the package's own __init__: the public names, lazily, from every layer
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def rank_of(module: str) -> int:
    if module == "trainwell":
        return TOP
    key = module
    while key not in RANKS:
        if "." not in key:
            raise AssertionError(f"{module} is in no layer: add its package to LAYERS and to docs/architecture.md")
        key = key.rsplit(".", 1)[0]
    return RANKS[key]


def imports_of(module: str) -> set[str]:
    """The trainwell modules that ``module`` imports, anywhere in the file (functions and TYPE_CHECKING too)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "trainwell")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "trainwell":
                continue
            for alias in node.names:
                # `from trainwell.pkg import sub` imports the submodule; any other name comes from pkg itself.
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in MODULES else target)
    found.discard(module)
    return {name for name in found if name in MODULES}


GRAPH = {module: imports_of(module) for module in MODULES}


def test_the_walker_sees_the_imports_it_must():
    # The check below is only as good as the graph: a few edges known to exist must be found.
    assert "trainwell.engine.steps" in GRAPH["trainwell.engine.loop"]
    assert "trainwell.distributed" in GRAPH["trainwell.engine.tracking"]  # `from trainwell import distributed`
    assert "trainwell.model.lazy_layers" in GRAPH["trainwell.model.model"]  # `from trainwell.model import x`
    assert "trainwell.model.model" in GRAPH["trainwell.tools.lr_finder"]  # an import inside a function


def test_no_import_cycles():
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_imports_only_go_down_the_layers():
    upward = [
        f"{module} (layer {rank_of(module)}) imports {target} (layer {rank_of(target)})"
        for module, targets in GRAPH.items()
        for target in sorted(targets)
        if rank_of(target) > rank_of(module)
    ]
    assert not upward, "imports that climb the layers:\n" + "\n".join(upward)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_says_its_job_and_stays_small(module):
    path = MODULES[module]
    text = path.read_text()
    docstring = ast.get_docstring(ast.parse(text))
    assert docstring and docstring.strip(), f"{path} needs a first docstring line saying its one job"
    lines = text.count("\n")
    assert lines <= MAX_LINES, f"{path} has {lines} lines; split it (the house keeps modules under {MAX_LINES})"


def test_the_layer_map_matches_the_docs():
    # docs/architecture.md draws the same layers; a package added to one must be added to the other.
    architecture = (SOURCE.parents[1] / "docs" / "architecture.md").read_text()
    for keys in LAYERS:
        for key in keys:
            assert f"`{key}" in architecture, f"docs/architecture.md does not mention `{key}`"
    packages = {path.parent.name for path in SOURCE.glob("*/__init__.py")}
    known = {key.split(".")[0] for keys in LAYERS for key in keys}
    assert packages <= known, f"packages missing from LAYERS: {sorted(packages - known)}"
