"""Retrain a feature-vector module's last layer for multi-label image classification.

A modern, multi-label version of TensorFlow Hub's retrain.py. It reads
`dataset_train.lst` and `dataset_test.lst` from --image_dir (see data_generation.py),
runs every image once through a frozen ImageNet feature module and caches the
resulting "bottleneck" vectors, trains a new sigmoid layer on them, and exports a
frozen graph that maps float images in [0, 1] to one probability per label:

    python retrain.py --image_dir ./DATASET/ --tfhub_module mobilenet_v2_100_224 --num_classes=5

Then label new images with label_image.py. Progress and results are logged;
--summaries_dir holds TensorBoard summaries (a new sub-folder for each run). Everything a
run writes goes into one folder, --output_dir (default MODEL_DETAILS/ in the project).
The same run from Python: multilabel.train (see docs/python_api.md).
"""

import argparse
import logging
import os
import sys

from multilabel.base import environment

# Before any import of a package: from a Python without them, one line says which to use.
environment.require("retrain.py")

from multilabel.base import options
from multilabel.base.command import run_command
from multilabel.base.errors import UserError

# TensorFlow's C++ start-up chatter would bury the one line an error prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VERBOSITY = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")


def parser():
    """The flags: one per `TrainOptions` field (options.add_flags), and
    --logging_verbosity. A parse returns exactly the flags given."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS, add_help=False)
    p.add_argument("-h", "--help", action=_HelpWithModules, help="show this help and exit")
    options.add_flags(p)
    p.add_argument("--logging_verbosity", choices=VERBOSITY,
                   help="how much to log (default: INFO)")
    return p


class _HelpWithModules(argparse.Action):
    """-h: the help, then every built-in module name, read from the module recipes. Those
    import TensorFlow, so they are read only when help is asked for, not on every run."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from multilabel.base.quiet_start import start_tensorflow

        start_tensorflow()
        from multilabel.features.feature_modules import known_modules

        parser.print_help()
        print(f"\nbuilt-in modules (--tfhub_module): {', '.join(known_modules())}")
        parser.exit()


def parse_args(argv):
    """`(given, verbosity)`: {option: value} of the flags given, and the log level."""
    p = parser()
    args = p.parse_args(argv)
    given = options.given(args)
    verbosity = getattr(args, "logging_verbosity", "INFO")
    try:
        options.TrainOptions.from_preset(**given).check()
    except UserError as e:
        p.error(str(e))
    return given, verbosity


def main(argv=None):
    given, verbosity = parse_args(argv)
    level = "CRITICAL" if verbosity == "FATAL" else verbosity
    logging.basicConfig(level=logging.getLevelName(level),
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    # Every file is written atomically, so stopping anywhere is safe.
    return run_command("retrain.py", train, given,
                       interrupted="finished bottlenecks are kept, and --resume continues "
                                   "from the last checkpoint")


def train(given):
    """Train as the flags `given` say. TensorFlow loads only now that they are fine."""
    from multilabel import api

    api.train_with(options.TrainOptions.from_preset(**given))


if __name__ == "__main__":
    sys.exit(main())
