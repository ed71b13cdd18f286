"""What the two Beam commands share as command-line programs: the error boundary.

Each command parses its own flags (handing the rest to Beam), then `main` starts
TensorFlow quietly, runs it, and turns a `UserError` or Ctrl-C into one line and an exit
status, as the project's scripts do.
"""

import argparse
import logging
import sys

from multilabel.base.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, UserError
from multilabel.base.quiet_start import start_tensorflow


def positive(text):
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def names(text):
    """An argparse type: comma-separated names (modules, ops) as a tuple, none empty."""
    values = tuple(value.strip() for value in text.split(","))
    if not all(values):
        raise argparse.ArgumentTypeError(f"not a comma-separated list of names: {text!r}")
    return values


def main(name, parse_args, run, argv, interrupted):
    """Run the command `name`: `run(args, beam_argv)` returns the exit status.

    `interrupted` is what the line printed on Ctrl-C adds after "interrupted".
    """
    args, beam_argv = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        start_tensorflow()
        return run(args, beam_argv)
    except UserError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{name}: interrupted{interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
