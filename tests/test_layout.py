"""The package layout is the architecture: every import points down a layer, and there are no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ttH_adv", "processors", "training", "condor")
# bottom to top; a module may import from its own layer and the ones below it
LAYERS = (
    ("ttH_adv", "ttH_adv.errors", "ttH_adv.progress", "ttH_adv.atomic", "ttH_adv.documents"),
    ("ttH_adv.config",),
    ("ttH_adv.event",),
    ("ttH_adv.inputs",),
    ("ttH_adv.output", "ttH_adv.dump", "ttH_adv.inference"),
    ("ttH_adv.stats",),
    ("processors",),
    ("training", "condor"),
    ("ttH_adv.report",),
    ("ttH_adv.app",),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """First-party modules a file imports, at module level or lazily inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] in PACKAGES}


def layer_of(module: str) -> int:
    """The layer of the longest prefix of module that LAYERS names."""
    best = None
    for level, names in enumerate(LAYERS):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (level, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS (and the README's layout)"
    return best[0]


def first_party_graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    return {name: {m for m in imported_modules(p) if m in modules and m != name} for name, p in modules.items()}


GRAPH = first_party_graph()


def test_the_layers_cover_every_module_and_the_app_is_on_top():
    assert len(GRAPH) > 50
    assert layer_of("ttH_adv.app.cli") == len(LAYERS) - 1
    assert {layer_of(m) for m in GRAPH} == set(range(len(LAYERS)))


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_every_import_points_down(module):
    upward = sorted(m for m in GRAPH[module] if layer_of(m) > layer_of(module))
    assert not upward, f"{module} (layer {layer_of(module)}) imports from above: {upward}"


def test_no_import_cycles():
    done, active = set(), []

    def visit(m):
        if m in active:
            raise AssertionError("import cycle: " + " -> ".join(active[active.index(m):] + [m]))
        if m in done:
            return
        active.append(m)
        for d in sorted(GRAPH[m]):
            visit(d)
        active.pop()
        done.add(m)

    for m in sorted(GRAPH):
        visit(m)

