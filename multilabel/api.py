"""Training from Python: `multilabel.train(image_dir, output_dir=..., module=..., **options)`.

The options are `TrainOptions` (base/options.py), the one declaration of every option:
retrain.py builds its flags from it (the flag `--name` sets the field `name`), `train`
takes the same names as keyword arguments, and the run reads them unrenamed. `train`
runs what retrain.py runs and returns the measures and the paths it wrote; bad input
raises `UserError` (nothing exits). Its progress is logged as retrain.py's is: where the
caller set up no logging of its own, `train` shows it on stderr for the run's duration,
unless `quiet=True`.

One folder per run: every output goes into `output_dir` under its usual name (the
option's `file=`) unless its own option names another path. Without an `output_dir`,
outputs go beside an `output_graph` that is given, else into `MODEL_DETAILS/` of the
project folder. Default paths (`DATASET/`, `MODEL/`, `MODEL_DETAILS/`) resolve as every
command resolves them (`base.project`). Paths given explicitly are taken as given.
"""

import contextlib
import logging
import os
from typing import NamedTuple

from multilabel.base.options import PRESETS, TrainOptions, output_files, resolve

__all__ = ["PRESETS", "TrainOptions", "TrainResult", "resolve", "train", "train_with"]


class TrainResult(NamedTuple):
    """What `train` made: the measures (metrics.json's content) and where it wrote."""

    measures: dict
    output_dir: str
    outputs: dict  # option name (output_graph, output_labels, ...) -> path written


def train(image_dir=None, output_dir=None, module=None, preset="default", quiet=False,
          **options):
    """Train and export a classifier on the lists in `image_dir`, as retrain.py does.

    `preset` names a recipe (PRESETS: "default", or "best" for the most accurate one);
    `module` is a module handle, or several separated by commas (or a sequence of them),
    None for the preset's; `options` are `TrainOptions` fields, each in place of the
    preset's value; `quiet` shows no progress (warnings still show). Returns a
    `TrainResult`; raises UserError on bad input or bad option values, TypeError on an
    unknown option.
    """
    given = {name: value for name, value in (("image_dir", image_dir),
                                             ("output_dir", output_dir),
                                             ("tfhub_module", module)) if value is not None}
    return train_with(TrainOptions.from_preset(preset, **given, **options), quiet=quiet)


def train_with(options, quiet=False):
    """Train and export as `options` (a `TrainOptions`) say; a `TrainResult`. `quiet`:
    as `train`'s."""
    options.check()
    with progress_shown(quiet):
        return _train(options)


@contextlib.contextmanager
def progress_shown(quiet=False):
    """Show the package's INFO lines (steps, measures, progress; bars on a terminal) on
    stderr, as retrain.py does, while the block runs.

    Python shows only warnings from a library whose caller configured no logging, so a
    run of minutes would pass in silence. Where the caller configured logging (the root
    logger or the package's has a handler: retrain.py, a notebook's own setup), that
    setup decides and nothing changes; `quiet` changes nothing either. While the handler
    is attached the package's records stop at it: a library that calls `logging.info`
    during the run gives the root logger a handler of its own, which would print each line
    twice.
    """
    package = logging.getLogger("multilabel")
    if quiet or logging.getLogger().handlers or package.handlers:
        yield
        return
    handler = logging.StreamHandler()  # sys.stderr as it is now
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    level, propagate = package.level, package.propagate
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    package.propagate = False
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        package.propagate = propagate


def _train(options):
    from multilabel.base.quiet_start import start_tensorflow

    # TensorFlow's notes (through absl) on renaming a saved module set's inputs, and its
    # deprecation notices about the v1 API the frozen-graph export uses on purpose: not
    # the user's concern.
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    start_tensorflow()  # before anything imports it, so without its C++ start-up lines
    from multilabel import retraining
    from multilabel.base import run_guard
    from multilabel.evaluation.thresholds import rule_path

    resolved = resolve(options)
    # Outputs checked, the run folder locked, the bytes written recorded for the manifest.
    with run_guard.guarded(resolved, {"--output_thresholds' rule file":
                                      rule_path(resolved.output_thresholds)}):
        measures = retraining.run(resolved, options.changed())
    written = {name: getattr(resolved, name) for name in [*output_files(), "saved_model_dir"]}
    written = {name: path for name, path in written.items() if path and os.path.exists(path)}
    return TrainResult(measures, resolved.output_dir, written)

