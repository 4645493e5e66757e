"""The package's layout: imports run one way, from I/O up through the stages to the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import cytopaint

ROOT = Path(cytopaint.__file__).parent

# Lowest first. A module may import from its own group and from groups of lower layers only.
LAYERS = (
    {"base": ("cytopaint", "cytopaint.geometry", "cytopaint.morphology", "cytopaint.paths", "cytopaint.runtime")},
    {"io": ("cytopaint.io",)},
    {"diffusion": ("cytopaint.diffusion",), "synth": ("cytopaint.synth",)},
    {"models": ("cytopaint.models",)},
    {"plan": ("cytopaint.plan",)},
    {"repaint": ("cytopaint.repaint",)},
    {"blend": ("cytopaint.blend",)},
    {"qc": ("cytopaint.qc",), "provenance": ("cytopaint.provenance",)},
    {"evaluation": ("cytopaint.evaluation",)},
    {"cli": ("cytopaint.cli",)},
)


def _group(module: str) -> tuple[int, str]:
    """(layer, group) of a module: the group with the longest matching prefix."""
    best = (-1, "", "")
    for layer, groups in enumerate(LAYERS):
        for name, prefixes in groups.items():
            for prefix in prefixes:
                if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best[2]):
                    best = (layer, name, prefix)
    assert best[0] >= 0, f"{module} is in no layer of the layout"
    return best[0], best[1]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


def _imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every cytopaint module that ``source`` (of ``module``) imports, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                parts = package.split(".")
                target = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            # `from package import name` may import the submodule `package.name`
            found += [(node.lineno, f"{target}.{a.name}" if _is_module(f"{target}.{a.name}") else target)
                      for a in node.names]
    return [(line, m) for line, m in found if m == "cytopaint" or m.startswith("cytopaint.")]


def _file_imports(path: Path) -> list[tuple[int, str]]:
    return _imports(path.read_text(), _module_name(path), path.name == "__init__.py")


def test_every_module_has_a_place_in_the_layout() -> None:
    for path in ROOT.rglob("*.py"):
        _group(_module_name(path))


def test_imports_run_from_io_through_the_stages_to_the_cli() -> None:
    backwards = []
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        layer, group = _group(module)
        for line, target in _file_imports(path):
            t_layer, t_group = _group(target)
            if t_group != group and t_layer >= layer:
                backwards.append(f"{path.relative_to(ROOT.parent)}:{line}: {module} ({group}) imports {target} "
                                 f"({t_group})")
    assert not backwards, "imports against the layout:\n" + "\n".join(backwards)


def test_the_layout_check_sees_backward_imports() -> None:
    source = "from cytopaint.repaint.stage import run_batch\nfrom ..blend import stage\nfrom . import table\n"
    targets = [t for _, t in _imports(source, "cytopaint.plan.section")]
    assert targets == ["cytopaint.repaint.stage", "cytopaint.blend.stage", "cytopaint.plan.table"]
    layer = _group("cytopaint.plan.section")[0]
    assert [_group(t)[0] > layer for t in targets] == [True, True, False]
