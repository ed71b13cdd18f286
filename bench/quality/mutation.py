"""Mutation testing of the pure modules: would their tests notice a small bug?

Each mutant is the module with one small change a slip of the hand makes: a comparison
flipped (`<` to `<=`, `==` to `!=`, `in` to `not in`), `+` and `-` swapped, a number
changed (`n` to `n + 1`, `True` to `False`), a condition negated (`if`, `while`, `x if
c else y`, a comprehension's `if`), a `raise` dropped, a returned value replaced by
`None`. A module with more than --max_mutants candidates is sampled evenly along the
file. Each mutant runs against the module's own test files only (`pytest -x`, in a
scratch copy of the repository, so the working tree is never touched); failing tests or
running past the time limit (a loop that no longer ends) count as caught.

A mutant that no input can tell apart from the original is *equivalent*: no test can
catch it. A test file of its module says so in a comment holding the key this script prints,
`# Equivalent mutant: `before` -> `after`: why.`; such survivors are listed as
explained. The score counts only mutants the tests catch.

    python -m bench.quality.mutation                      # all modules, one table
    python -m bench.quality.mutation --modules splitting  # one module, survivors listed
    python -m bench.quality.mutation --list               # the mutants, without running them

Pure Python (ast, subprocess): mutmut and cosmic-ray would need their own setup for a
package in wings whose tests import TensorFlow through conftest.py.
"""

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Module -> its test files and extra pytest arguments. The pure modules' tests need no
# fixture of conftest.py, whose TensorFlow import would cost every mutant seconds.
MODULES = {
    "metrics": ("multilabel/evaluation/metrics.py", ("tests/test_metrics.py",),
                ["--noconftest"]),
    "thresholds": ("multilabel/evaluation/thresholds.py", ("tests/test_thresholds.py",),
                   ["--noconftest"]),
    "listfile": ("multilabel/data/listfile.py", ("tests/test_listfile.py",), ["--noconftest"]),
    "splitting": ("multilabel/data/splitting.py", ("tests/test_splitting.py",),
                  ["--noconftest"]),
    "labels_json": ("multilabel/data/labels_json.py", ("tests/test_labels_json.py",),
                    ["--noconftest"]),
    "feature_scaling": ("multilabel/training/feature_scaling.py",
                        ("tests/test_feature_scaling.py",), ["--noconftest"]),
    # Builds small TensorFlow graphs; the EfficientNet export (seconds a run) is left out:
    # it only shows that a real network passes, which the tiny module's export shows too.
    # test_graph_routes.py holds the crafted graphs that reach functions by every route.
    "graph_ops": ("multilabel/labelling/graph_ops.py",
                  ("tests/test_graph_ops.py", "tests/test_graph_routes.py"),
                  ["-k", "not efficientnet"]),
}
# What the scratch copy needs: the package, the tests and the scripts tests import.
COPIED = ("multilabel", "tests", "label_image.py", "retrain.py", "data_generation.py",
          "pytest.ini")

_FLIPPED = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
            ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
            ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_SWAPPED = {ast.Add: ast.Sub, ast.Sub: ast.Add}


def _docstrings(tree):
    """The string constants that are docstrings (never mutated, never counted)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            if node.body and isinstance(node.body[0], ast.Expr) and isinstance(
                    node.body[0].value, ast.Constant):
                found.add(id(node.body[0].value))
    return found


def _sites(tree):
    """`(node, parent, operator, variant)` for every possible mutation, in a fixed order."""
    parents = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    skip = _docstrings(tree)
    sites = []
    for node in ast.walk(tree):
        parent = parents.get(id(node))
        if isinstance(node, ast.Compare):
            sites += [(node, parent, "flip comparison", k) for k, op in enumerate(node.ops)
                      if type(op) in _FLIPPED]
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _SWAPPED:
            sites.append((node, parent, "swap + and -", None))
        elif (isinstance(node, ast.Constant) and id(node) not in skip
              and type(node.value) in (int, float, bool)):
            # The key shows the expression the number is in (`-1` that around the sign).
            shown = parents.get(id(parent)) if isinstance(parent, ast.UnaryOp) else parent
            shown = shown if isinstance(shown, ast.expr) else parent
            sites.append((node, shown, "change constant", None))
        elif isinstance(node, (ast.If, ast.While, ast.IfExp)):
            sites.append((node, parent, "negate condition", None))
        elif isinstance(node, ast.comprehension):
            sites += [(node, parent, "negate condition", k) for k in range(len(node.ifs))]
        elif isinstance(node, ast.Raise) and node.exc is not None:
            sites.append((node, parent, "drop raise", None))
        elif (isinstance(node, ast.Return) and node.value is not None
              and not (isinstance(node.value, ast.Constant) and node.value.value is None)):
            sites.append((node, parent, "return None", None))
    # In the order of the source, so that a sample spreads evenly along the file.
    return sorted(sites, key=lambda s: (_line(s[0], s[3]), s[2], s[3] or 0))


def _line(node, variant):
    """Where a mutation is: the line of the node (of the `if` of a comprehension)."""
    return (node.ifs[variant] if isinstance(node, ast.comprehension) else node).lineno


def _replace_statement(parent, old, new):
    for field, value in ast.iter_fields(parent):
        if isinstance(value, list) and any(item is old for item in value):
            value[[i for i, item in enumerate(value) if item is old][0]] = new
            return
    raise AssertionError("statement not found in its parent")


def _mutate(node, parent, operator, variant):
    """Apply one mutation in place; return `(before, after)` source snippets, the key."""
    if operator == "flip comparison":
        before = ast.unparse(node)
        node.ops[variant] = _FLIPPED[type(node.ops[variant])]()
        return before, ast.unparse(node)
    if operator == "swap + and -":
        before = ast.unparse(node)
        node.op = _SWAPPED[type(node.op)]()
        return before, ast.unparse(node)
    if operator == "change constant":
        # The enclosing expression makes the key say which constant changed.
        shown = parent if isinstance(parent, ast.expr) else node
        before = ast.unparse(shown)
        node.value = (not node.value) if isinstance(node.value, bool) else node.value + 1
        return before, ast.unparse(shown)
    if operator == "negate condition":
        if isinstance(node, ast.comprehension):
            before = ast.unparse(node.ifs[variant])
            node.ifs[variant] = ast.UnaryOp(ast.Not(), node.ifs[variant])
            return before, ast.unparse(node.ifs[variant])
        before = ast.unparse(node.test)
        node.test = ast.UnaryOp(ast.Not(), node.test)
        return before, ast.unparse(node.test)
    if operator == "drop raise":
        before = ast.unparse(node)
        _replace_statement(parent, node, ast.Pass())
        return before, "pass"
    before = ast.unparse(node)
    node.value = ast.Constant(None)
    return before, "return None"


class Mutant:
    def __init__(self, index, line, operator, before, after, source):
        self.index, self.line, self.operator = index, line, operator
        self.before, self.after, self.source = before, after, source

    @property
    def key(self):
        return f"`{self.before}` -> `{self.after}`"


def mutants(source, max_mutants):
    """The module's mutants (sampled evenly along the file when there are more than
    `max_mutants`), each with its mutated source."""
    count = len(_sites(ast.parse(source)))
    chosen = range(count) if count <= max_mutants else sorted(
        {i * count // max_mutants for i in range(max_mutants)})
    found = []
    for index in chosen:
        tree = ast.parse(source)  # a fresh tree each time: mutations change it in place
        node, parent, operator, variant = _sites(tree)[index]
        line = _line(node, variant)
        before, after = _mutate(node, parent, operator, variant)
        ast.fix_missing_locations(tree)
        found.append(Mutant(index, line, operator, " ".join(before.split()),
                            " ".join(after.split()), ast.unparse(tree)))
    return found, count


def _run_tests(scratch, test_files, args, timeout):
    """`"passed"`, `"failed"` or `"timeout"` for the tests in the scratch copy."""
    env = dict(os.environ, PYTHONPATH=scratch, PYTHONDONTWRITEBYTECODE="1",
               TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args,
               *test_files]
    process = subprocess.Popen(command, cwd=scratch, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        return "passed" if process.wait(timeout=timeout) == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)  # the mutant's whole process group, nothing else
        process.wait()
        return "timeout"


def test_module(name, scratch, max_mutants, verbose):
    """Run every mutant of module `name`; return `(caught, caught by the time limit, total,
    survivors, survivors explained as equivalent)`."""
    module, test_files, args = MODULES[name]
    target = os.path.join(scratch, module)
    with open(os.path.join(REPO, module), encoding="utf-8") as f:
        original = f.read()
    test_text = ""
    for test_file in test_files:
        with open(os.path.join(REPO, test_file), encoding="utf-8") as f:
            test_text += f.read()
    found, _ = mutants(original, max_mutants)
    # The unparsed original must pass: it shows the harness, not a mutant, is sound, and
    # its time sets the limit that tells a mutant that loops forever.
    with open(target, "w", encoding="utf-8") as f:
        f.write(ast.unparse(ast.parse(original)))
    start = time.monotonic()
    if _run_tests(scratch, test_files, args, timeout=600) != "passed":
        raise SystemExit(f"{', '.join(test_files)} do not pass on the unmutated {module}")
    # Generous, so that a busy machine does not pass a slow run off as a caught mutant.
    timeout = 10 * (time.monotonic() - start) + 30
    caught, timed_out, survivors = 0, 0, []
    try:
        for mutant in found:
            with open(target, "w", encoding="utf-8") as f:
                f.write(mutant.source)
            outcome = _run_tests(scratch, test_files, args, timeout)
            if outcome == "passed":
                survivors.append(mutant)
            else:
                caught += 1
                timed_out += outcome == "timeout"
            if verbose:
                print(f"  {os.path.basename(module)}:{mutant.line} {mutant.operator}: "
                      f"{mutant.key} {outcome}", flush=True)
    finally:
        with open(target, "w", encoding="utf-8") as f:
            f.write(original)
    explained = [m for m in survivors if m.key in test_text]
    return caught, timed_out, len(found), survivors, explained


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", default=",".join(MODULES),
                   help="comma-separated names among: " + ", ".join(MODULES))
    p.add_argument("--max_mutants", type=int, default=60, help="per module")
    p.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    p.add_argument("--verbose", action="store_true", help="print each mutant's outcome")
    p.add_argument("--fail_under", type=float, default=0.0,
                   help="exit 1 when the overall score (%%) is lower")
    args = p.parse_args(argv)
    names = args.modules.split(",")
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        p.error(f"unknown module {unknown[0]!r}; choose among {', '.join(MODULES)}")

    if args.list:
        for name in names:
            module = MODULES[name][0]
            with open(os.path.join(REPO, module), encoding="utf-8") as f:
                found, count = mutants(f.read(), args.max_mutants)
            print(f"{module}: {len(found)} of {count} possible mutants")
            for m in found:
                print(f"  {os.path.basename(module)}:{m.line} {m.operator}: {m.key}")
        return 0

    rows, all_survivors = [], []
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        for entry in COPIED:
            source = os.path.join(REPO, entry)
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(scratch, entry),
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(source, scratch)
        for name in names:
            start = time.monotonic()
            caught, timed_out, total, survivors, explained = test_module(
                name, scratch, args.max_mutants, args.verbose)
            rows.append((name, total, caught, timed_out, len(explained),
                         time.monotonic() - start))
            module = os.path.basename(MODULES[name][0])
            for m in survivors:
                note = "equivalent, explained in the tests" if m in explained else "SURVIVED"
                all_survivors.append(f"{module}:{m.line} {m.operator}: {m.key} ({note})")
            print(f"{name}: {caught}/{total} caught", flush=True)

    print()
    # "by time": caught because the tests ran past the limit (a loop that never ends).
    print(f"{'module':<16} {'mutants':>7} {'caught':>6} {'by time':>7} {'score':>7} "
          f"{'equivalent':>10} {'time':>6}")
    for name, total, caught, timed_out, explained, seconds in rows:
        print(f"{name:<16} {total:>7} {caught:>6} {timed_out:>7} {100 * caught / total:>6.1f}% "
              f"{explained:>10} {seconds:>5.0f}s")
    total, caught, timed_out, explained = (sum(r[i] for r in rows) for i in (1, 2, 3, 4))
    score = 100 * caught / total
    print(f"{'all':<16} {total:>7} {caught:>6} {timed_out:>7} {score:>6.1f}% {explained:>10}")
    if all_survivors:
        print("\nsurvivors:")
        for line in all_survivors:
            print("  " + line)
    return 1 if score < args.fail_under else 0


if __name__ == "__main__":
    sys.exit(main())
