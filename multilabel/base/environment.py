"""Whether the running Python can run the project's commands, said in one line.

The commands need the packages of requirements.txt, which `make demo` and `make test`
install into the project's virtual environment (`.venv`). Run with another Python (the
system's `python3`), they would stop at the first import with a `ModuleNotFoundError`
traceback; `require` says instead, in one line, which Python to use. It looks packages
up without importing them (`importlib.util.find_spec`), so the check costs nothing, and
it imports only the standard library, so it works on any Python 3.
"""

import importlib.util
import os
import sys

from multilabel.base import project

# Import names of requirements.txt's packages every command may load.
RUNTIME = ("numpy", "PIL", "tqdm", "tensorflow", "tensorflow_hub", "ai_edge_litert")
BEAM = RUNTIME + ("apache_beam",)  # the Beam commands' (requirements-beam.txt)
VENV = ".venv"  # the environment the Makefile creates in the project folder


def missing(modules):
    """The names among `modules` that this Python cannot import, in order."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require(command, modules=RUNTIME):
    """Return if this Python has every package of `modules`; else print one line saying
    which Python runs `command` and exit with status 2 (bad usage)."""
    absent = missing(modules)
    if absent:
        print(advice(command, absent), file=sys.stderr)
        sys.exit(2)


def advice(command, absent):
    """The line for `command` run by a Python lacking the packages `absent`."""
    venv = os.path.join(project.project_folder(), VENV)
    python = os.path.join(venv, "bin", "python")
    where = (f"run it with {python}, or activate the environment first "
             f"(. {os.path.join(venv, 'bin', 'activate')})")
    if not os.path.exists(python):
        where = f"`make demo` (or `make test`) in {project.project_folder()} creates it; then {where}"
    return (f"{command}: error: this Python ({sys.executable}) has no {', '.join(absent)}: "
            f"the commands run in the project's environment; {where}")
