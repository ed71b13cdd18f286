"""What the two Beam commands share as command-line programs: their start.

Each command parses its own flags (handing the rest to Beam); `main` then sets up
logging and starts TensorFlow quietly, and runs the command through the project's one
error boundary (`multilabel.base.command.run_command`).
"""

import logging
import sys

from multilabel.base import options
from multilabel.base.command import run_command
from multilabel.base.errors import UserError
from multilabel.base.quiet_start import start_tensorflow


def with_option_defaults(parser, args, names):
    """`args` with the option flags `names` (added by options.add_flags, so absent when
    not given) set to what retrain.py would use: its defaults, the project's folders
    (options.resolve); argparse's error for a value TrainOptions.check refuses."""
    try:
        resolved = options.resolve(options.TrainOptions(**options.given(args)))
        resolved.check()
    except UserError as e:
        parser.error(str(e))
    for name in names:
        setattr(args, name, getattr(resolved, name))
    return args


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
