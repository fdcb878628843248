"""The package reads as its dependency stack, and stays that way.

Every ``nfkit`` import in ``src/nfkit`` is read from the source, lazy imports inside functions
included (``if TYPE_CHECKING:`` blocks are annotations for the type checker, never executed, and
are left out): no import circle between modules, no package importing one above it in the order,
and only ``__init__``, ``errors`` and ``testing`` at the root.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

#: The stack, bottom first. A package may import packages at its own level or below.
ORDER = {
    "errors": 0,
    "util": 1,
    "nets": 2,
    "groups": 3,
    "spaces": 4,
    "testing": 5,
    "layers": 5,
    "models": 6,
    "data": 7,
    "tasks": 8,
    "optim": 8,
    "cli": 9,
    "bench": 9,
}
ROOT_MODULES = {"nfkit", "nfkit.errors", "nfkit.testing"}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (SRC / "nfkit").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the nfkit modules it imports (``from a import b`` counts ``a.b`` when it is a module)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        for block in [n for n in ast.walk(tree) if isinstance(n, ast.If) and ast.unparse(n.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")]:
            block.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            edges[name] |= {t for t in targets if t in modules and t != name}
    return edges


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "nfkit"


MODULES = _modules()
EDGES = _imports(MODULES)


def test_only_init_errors_and_testing_sit_at_the_root():
    root = {m for m in MODULES if m.count(".") <= 1 and not (MODULES[m].name == "__init__.py" and m != "nfkit")}
    assert root <= ROOT_MODULES, f"move these into a package: {sorted(root - ROOT_MODULES)}"


def test_every_package_has_a_place_in_the_order():
    packages = {_package(m) for m in MODULES} - {"nfkit"}
    assert packages <= set(ORDER), f"give these a place in ORDER: {sorted(packages - set(ORDER))}"


def test_no_package_imports_one_above_it():
    wrong = sorted(
        f"{a} imports {b}"
        for a, targets in EDGES.items()
        for b in targets
        if _package(a) != "nfkit" and _package(b) != "nfkit" and ORDER[_package(b)] > ORDER[_package(a)]
    )
    assert not wrong, "imports against the order nets → groups → spaces → layers → models → data → tasks → cli/bench:\n" + "\n".join(wrong)


def _find_circle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges.get(module, ())):
            # a package's __init__ re-exporting its own submodules is not a circle back into them
            if module == target.rpartition(".")[0] and MODULES.get(module, Path("x")).name == "__init__.py":
                continue
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if state.get(target) is None:
                found = visit(target)
                if found:
                    return found
        state[module] = 2
        path.pop()
        return None

    for module in sorted(edges):
        if state.get(module) is None:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_no_import_circle():
    cycle = _find_circle(EDGES)
    assert cycle is None, "import circle: " + " → ".join(cycle or [])


def test_the_circle_check_catches_a_lazy_circle():
    edges = {k: set(v) for k, v in EDGES.items()}
    edges["nfkit.spaces.spec"] = edges.get("nfkit.spaces.spec", set()) | {"nfkit.spaces.features"}  # as spec.py once did
    assert _find_circle(edges) == ["nfkit.spaces.features", "nfkit.spaces.spec", "nfkit.spaces.features"]


@pytest.mark.parametrize("bad", ["from nfkit.tasks.loop import fit", "import nfkit.cli.main"])
def test_the_order_check_catches_a_wrong_import(tmp_path, bad):
    """The checker itself: a layer that imports the training loop or the CLI is caught."""
    module = "nfkit.layers.np"
    edges = dict(EDGES)
    tree = ast.parse(bad)
    node = tree.body[0]
    target = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
    edges[module] = EDGES[module] | {target}
    assert any(ORDER[_package(b)] > ORDER[_package(module)] for b in edges[module] if _package(b) != "nfkit")
