"""What the two Beam commands share as command-line programs: their start.

Each command parses its own flags (handing the rest to Beam); `main` then sets up
logging and starts TensorFlow quietly, and runs the command through the project's one
error boundary (`multilabel.base.command.run_command`).
"""

import logging
import sys

from multilabel.base.command import run_command
from multilabel.base.quiet_start import start_tensorflow


def main(name, parse_args, run, argv, interrupted=""):
    """Run the command `name`: `run(args, beam_argv)` returns the exit status.

    `interrupted` is the sentence the line printed on Ctrl-C adds (what is kept).
    """
    args, beam_argv = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return run_command(name, _started, run, args, beam_argv, interrupted=interrupted)


def _started(run, args, beam_argv):
    start_tensorflow()
    return run(args, beam_argv)
