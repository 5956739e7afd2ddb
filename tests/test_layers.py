"""The package layout holds: imports point down the layers, and pyproject installs every
package folder.

    ir                                   imports no other quiltc package
    schedule, codegen, runtime_c, lang   import ir (runtime_c builds and loads source text,
                                         so it never imports codegen)
    progress                             imports no other quiltc package (bars, logs)
    driver                               the five above
    nn, ops, recipes, mcu, graph,        driver and below, progress, and the siblings ALLOWED
                                         names
    autotune
    demo, cli, quiltc/__init__           anything
"""

import ast
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = {"frontend": "quiltc", "ir": "quiltc.ir", "schedule": "quiltc.schedule",
                "codegen": "quiltc.codegen", "runtime_c": "quiltc.runtime_c"}
CORE = {"ir", "schedule", "codegen", "runtime_c", "lang"}
DRIVER_AND_BELOW = CORE | {"driver", "progress"}
ANYTHING = None
ALLOWED = {
    "ir": set(),
    "schedule": {"ir"},
    "codegen": {"ir"},
    "runtime_c": {"ir"},
    "lang": {"ir"},
    "progress": set(),
    "driver": CORE,
    "nn": DRIVER_AND_BELOW,
    "ops": DRIVER_AND_BELOW,
    "recipes": DRIVER_AND_BELOW | {"ops", "nn"},
    "mcu": DRIVER_AND_BELOW | {"nn", "recipes"},
    "graph": DRIVER_AND_BELOW | {"ops", "recipes"},
    "autotune": DRIVER_AND_BELOW | {"ops", "recipes", "graph"},
    "demo": ANYTHING,
    "cli": ANYTHING,
    "quiltc": ANYTHING,
}


def _modules():
    """(file, dotted module name) of every Python file of the package."""
    for folder, package in SOURCE_ROOTS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield path, ".".join((package, *parts))


def _layer(module):
    """The layer a dotted module belongs to: its first name below quiltc."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "quiltc"


def _imported(path, module):
    """The quiltc modules `path` (module `module`) imports, resolved to absolute names."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("quiltc"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not source.startswith("quiltc"):
                continue
            if source == "quiltc":  # `from quiltc import ops`: each name is a module
                yield from (f"quiltc.{alias.name}" for alias in node.names)
            else:
                yield source


MODULES = list(_modules())


@pytest.mark.parametrize("path, module", MODULES, ids=[m for _, m in MODULES])
def test_imports_point_down(path, module):
    layer = _layer(module)
    allowed = ALLOWED[layer]
    if allowed is ANYTHING:
        return
    upward = sorted({target for target in _imported(path, module)
                     if _layer(target) != layer and _layer(target) not in allowed})
    assert not upward, (f"{module} (layer {layer}) imports {', '.join(upward)}; "
                        f"{layer} may import only "
                        f"{', '.join(sorted(allowed)) or 'nothing of quiltc'}")


def test_every_layer_is_in_the_table():
    assert {_layer(module) for _, module in MODULES} <= set(ALLOWED)


def test_pyproject_installs_every_package_folder():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = set()
    for folder, package in SOURCE_ROOTS.items():
        for directory in [ROOT / folder, *(ROOT / folder).rglob("*")]:
            if directory.is_dir() and directory.name != "__pycache__" and any(
                    child.is_file() for child in directory.iterdir()):
                relative = directory.relative_to(ROOT / folder).parts
                folders.add(".".join((package, *relative)))
    assert listed == folders, (f"pyproject lists {sorted(listed - folders)} with no folder; "
                               f"folders missing from pyproject: {sorted(folders - listed)}")
