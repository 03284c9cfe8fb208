"""The package's layering, read from the source with ``ast`` (nothing is imported).

cli -> commands -> (runners ->) engines -> core, and reports -> core: no import cycles, no
import upwards, and frameworks (TensorFlow, Keras, JAX, torch, ONNX, Ray) only in engines/.
Imports inside functions count; ``if TYPE_CHECKING:`` blocks count for the layers too (a type
that lives above is a design smell), not for cycles (they never run).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tdcheck"

#: What each layer may import (besides itself). "base" is errors, _version and files.
ALLOWED = {
    "base": {"base"},
    "core": {"base"},
    "engines": {"base", "core"},
    "reports": {"base", "core"},
    "runners": {"base", "core", "engines"},
    "commands": {"base", "core", "engines", "runners", "reports"},
    "cli": {"base", "core", "reports", "commands"},
    "top": {"base", "core", "engines", "reports", "runners", "commands", "cli"},
}
BASE = {"tdcheck._version", "tdcheck.errors", "tdcheck.files"}
TOP = {"tdcheck", "tdcheck.__main__"}
FRAMEWORKS = {"tensorflow", "keras", "tf_keras", "jax", "jaxlib", "torch", "onnx",
              "onnxruntime", "tf2onnx", "ray"}  # fmt: skip
#: Third-party packages core may import: NumPy, its bfloat16 dtype, and the HDF5 reader
#: ``scan`` reads .h5 model files with (a file format, not a framework).
CORE_THIRD_PARTY = {"numpy", "ml_dtypes", "h5py"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("tdcheck", *path.relative_to(PACKAGE).with_suffix("").parts))
        found[name.removesuffix(".__init__")] = path
    return found


def layer(module: str) -> str:
    if module in BASE:
        return "base"
    if module in TOP:
        return "top"
    part = module.split(".")[1]
    if part not in ALLOWED:
        raise AssertionError(f"{module}: a new layer {part!r}; add it to ALLOWED in {__file__}")
    return part


def imports(module: str, path: Path) -> list[tuple[str, bool, int]]:
    """``(imported module, inside TYPE_CHECKING, line)`` for every import statement."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                if path.name != "__init__.py":
                    parts = parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(name, id(node) in typing_only, node.lineno) for name in names]
    return found


def internal_edges() -> dict[str, set[tuple[str, bool, int]]]:
    mods = modules()
    edges: dict[str, set[tuple[str, bool, int]]] = {m: set() for m in mods}
    for module, path in mods.items():
        for target, typing_only, line in imports(module, path):
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target not in (module, "tdcheck"):
                edges[module].add((target, typing_only, line))
    return edges


def test_the_package_has_the_layers_this_test_knows():
    assert {layer(m) for m in modules()} == set(ALLOWED)


def test_no_module_imports_a_layer_above_its_own():
    wrong = [
        f"{module}:{line} imports {target} ({layer(module)} may import "
        f"{', '.join(sorted(ALLOWED[layer(module)]))})"
        for module, targets in internal_edges().items()
        for target, _, line in sorted(targets)
        if layer(target) != layer(module) and layer(target) not in ALLOWED[layer(module)]
    ]
    assert not wrong, "\n".join(wrong)


def test_there_are_no_import_cycles():
    edges = {
        m: {t for t, typing_only, _ in targets if not typing_only}
        for m, targets in internal_edges().items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    assert cycles == []


def external(module: str, path: Path) -> set[str]:
    return {
        name.split(".")[0]
        for name, _, _ in imports(module, path)
        if name and not name.startswith("tdcheck")
    }


def test_core_imports_numpy_and_the_standard_library_only():
    wrong = {
        module: sorted(
            name for name in external(module, path)
            if name not in sys.stdlib_module_names and name not in CORE_THIRD_PARTY
        )
        for module, path in modules().items()
        if layer(module) in ("core", "base")
    }  # fmt: skip
    assert {m: names for m, names in wrong.items() if names} == {}


def test_only_engines_import_a_framework():
    wrong = {
        module: sorted(external(module, path) & FRAMEWORKS)
        for module, path in modules().items()
        if layer(module) != "engines"
    }
    assert {m: names for m, names in wrong.items() if names} == {}


def test_the_layer_checks_see_a_planted_violation(tmp_path, monkeypatch):
    """The checks above can fail: a core module importing commands, and one importing Keras."""
    package = tmp_path / "tdcheck"
    (package / "core").mkdir(parents=True)
    (package / "commands").mkdir()
    for name in ("__init__.py", "core/__init__.py", "commands/__init__.py", "commands/x.py"):
        (package / name).write_text("")
    (package / "core" / "bad.py").write_text(
        "def f():\n    import keras\n    from tdcheck.commands import x\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    with pytest.raises(AssertionError, match=r"tdcheck\.core\.bad:3 imports tdcheck\.commands"):
        test_no_module_imports_a_layer_above_its_own()
    with pytest.raises(AssertionError, match="keras"):
        test_core_imports_numpy_and_the_standard_library_only()
    with pytest.raises(AssertionError, match="keras"):
        test_only_engines_import_a_framework()


def test_no_judging_rule_is_defined_in_commands():
    """Bounds, tolerances and allowances live in core (core/judge, core/bounds): no ``def``
    line in commands/ names one (``grep 'def .*bound\\|def .*tolerance\\|def .*allowance'``)."""
    pattern = re.compile(r"def .*(bound|tolerance|allowance)")
    wrong = [
        f"{path.name}:{number} {line.strip()}"
        for path in sorted((PACKAGE / "commands").glob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert wrong == []
