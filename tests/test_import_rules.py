"""The layers of docs/ARCHITECTURE.md, enforced: what each part of segtool may import, scvae never
imports segtool, nothing below the command line imports it, and no import cycles (function-level
imports included: a cycle hidden inside a function is still a cycle)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# layer -> the layers it may import (itself included). "base" = errors, params, settings, resources, yamltext,
# locations.
ALLOWED = {
    "base": {"base"},
    "io": {"base", "io"},
    "data": {"base", "io", "data"},
    "pipeline": {"base", "io", "pipeline"},
    "training": {"base", "io", "training"},
    "evaluation": {"base", "io", "data", "pipeline", "evaluation"},
    "segment_files": {"base", "io", "pipeline", "segment_files"},
    "serve": {"base", "io", "pipeline", "segment_files", "serve"},
    "analysis": {"base", "io", "data", "pipeline", "analysis"},
    "root": {"base", "pipeline", "root"},
    "cli": {"base", "io", "data", "pipeline", "training", "evaluation", "segment_files", "serve", "analysis", "root",
            "cli"},
}
BASE = {"errors", "params", "settings", "resources", "yamltext", "locations"}


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "segtool":
        return "scvae"
    if len(parts) == 1 or parts[1] in ("__main__",):
        return "root" if len(parts) == 1 else "cli"
    if parts[1] in BASE or parts[1] in ("scorers", "recipes", "manifests"):
        return "base"
    return parts[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every segtool/scvae module a file imports, at any depth of the file (functions included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return {m for m in found if m.split(".")[0] in ("segtool", "scvae")}


def all_modules() -> dict[str, Path]:
    files = [*ROOT.joinpath("segtool").rglob("*.py"), *ROOT.joinpath("scvae").rglob("*.py")]
    return {module_name(p): p for p in files}


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    edges = {}
    for name, path in modules.items():
        # `from segtool.x import f` names a module only when x is one; keep the longest match.
        edges[name] = {m for m in imports_of(path) if m in modules and m != name}
    return edges


def test_scvae_never_imports_segtool():
    bad = [(m, t) for m, targets in graph().items() if m.startswith("scvae") for t in targets if t.startswith("segtool")]
    assert bad == []


def test_nothing_below_the_command_line_imports_it():
    bad = [(m, t) for m, targets in graph().items() if layer(m) not in ("cli",) and m.startswith("segtool")
           for t in targets if layer(t) == "cli"]
    assert bad == []


def test_each_layer_imports_only_the_layers_below_it():
    bad = [(m, t) for m, targets in graph().items() if m.startswith("segtool")
           for t in targets if t.startswith("segtool") and layer(t) not in ALLOWED[layer(m)]]
    assert bad == []


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    # A package's __init__ re-exporting its own modules is not a cycle between modules.
    cycles = [c for c in cycles if not all(x.startswith(c[0]) or c[0].startswith(x) for x in c)]
    assert cycles == []


@pytest.mark.parametrize("folder", ["scvae", "segtool/pipeline"])
def test_the_model_library_and_the_pipeline_name_no_flags_and_draw_nothing(folder):
    import re

    offenders = []
    for path in ROOT.joinpath(folder).rglob("*.py"):
        text = path.read_text()
        if re.search(r"(?<![\w-])--[a-z][a-z-]+", text) or re.search(r"^\s*(from|import) rich\b", text, re.M):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
