"""The package's layers: what each folder may import (README.md, "Layout").

core      -> core (``core.dispatch`` reaches the GPU backend lazily, inside a function)
cpu       -> core, cpu
gpu       -> core, cpu (the scalar twins it shares), gpu
tf, dask  -> anything but each other (adapters at the edge)
batch     -> core, batch and the public API
and ``import fastwarp`` loads no experiment, adapter, GPU or batch module.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1] / "fastwarp"
ALLOWED = {
    "core": {"core"},
    "cpu": {"core", "cpu"},
    "gpu": {"core", "cpu", "gpu"},
    "batch": {"core", "batch", "top"},
}


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "top"
    if parts[1] in ("core", "cpu", "gpu", "batch", "experiments", "tf", "commands"):
        return parts[1]
    return "dask" if parts[1] == "dask" else "top"


def _imports():
    """(module, imported module, at module level?) for every fastwarp import in the package."""
    for path in ROOT.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # a name may be a submodule (``from .cpu import generic``) or an attribute
                names = [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "fastwarp":
                    yield module, name, id(node) in top


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for module, target, at_top in _imports():
        src, dst = _layer(module), _layer(target)
        if src in ALLOWED and dst not in ALLOWED[src]:
            lazy_backend = module == "fastwarp.core.dispatch" and target == "fastwarp.cuda" and not at_top
            if not lazy_backend:
                wrong.append(f"{module} imports {target}")
        if {src, dst} == {"tf", "dask"}:
            wrong.append(f"{module} imports {target} (adapters never import each other)")
    assert not wrong, "\n".join(wrong)


def test_the_walk_sees_the_imports_it_checks():
    found = {(m, t) for m, t, _ in _imports()}
    assert ("fastwarp.api", "fastwarp.cpu.generic") in found
    assert ("fastwarp.cpu.generic", "fastwarp.core.coords.HUGE") in found
    assert ("fastwarp.core.dispatch", "fastwarp.cuda") in found


def test_import_fastwarp_loads_only_the_core_the_cpu_kernels_and_the_api():
    code = ("import sys, fastwarp\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('fastwarp'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    layers = {_layer(m) for m in loaded}
    assert layers <= {"top", "core", "cpu"}, loaded
    assert "fastwarp.api" in loaded and "fastwarp.core.runtime" in loaded


def test_every_subpackage_is_in_the_wheel():
    import tomllib

    meta = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
    listed = set(meta["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT.parent).parts) for p in ROOT.rglob("__init__.py")}
    assert on_disk - {"fastwarp.data"} <= listed, sorted(on_disk - listed)
    assert "fastwarp.data" in listed  # shipped from data/ (package-dir)
