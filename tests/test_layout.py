"""The package's wings import only downwards, and no module imports itself back.

Wings from the bottom up; a module may import its own wing and any wing below it. The
package root (retraining and the `python -m` entry points) stands above every wing.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "multilabel"
WINGS = ("base", "evaluation", "data", "features.backbones", "features", "training",
         "labelling", "export", "report", "beam", "")  # "" is the package root


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _wing(module):
    """The wing a module belongs to: the longest entry of WINGS its name lies under."""
    inner = module.removeprefix("multilabel").lstrip(".")
    return max((w for w in WINGS if w and (inner == w or inner.startswith(w + "."))),
               key=len, default="")


def _imports(path):
    """Every multilabel module `path` imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("multilabel"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("multilabel"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _is_module(candidate) else node.module)
    return found


def _is_module(name):
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


GRAPH = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_runs_up_a_wing(module):
    level = WINGS.index(_wing(module))
    upward = [m for m in GRAPH[module] if WINGS.index(_wing(m)) > level]
    assert not upward, f"{module} ({_wing(module) or 'root'}) imports a higher wing: {upward}"


def test_the_import_graph_has_no_circle():
    done = set()

    def visit(module, path=()):
        assert module not in path, "import circle: " + " -> ".join(path + (module,))
        if module not in done:
            for m in GRAPH[module] - {module}:
                visit(m, path + (module,))
            done.add(module)

    for module in GRAPH:
        visit(module)


def test_the_root_holds_only_the_run_and_the_entry_points():
    root = {p.stem for p in PACKAGE.glob("*.py")}
    assert root <= {"__init__", "retraining", "api", "beam_bottlenecks", "beam_label",
                    "beam_cluster", "build_modules"}
