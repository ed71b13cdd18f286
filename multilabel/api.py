"""Training from Python: `multilabel.train(image_dir, output_dir=..., module=..., **options)`.

`TrainOptions` is the one source of every option's default: retrain.py builds its flags
from it (the flag `--name` sets the field `name`), and `train` takes the same names as
keyword arguments. `train` runs what retrain.py runs and returns the measures and the
paths it wrote; bad input raises `UserError` (nothing is printed, nothing exits).

One folder per run: every output goes into `output_dir` under its usual name
(`labelling.run_folder.NAMES`) unless its own option names another path. Without an
`output_dir`, outputs go beside an `output_graph` that is given, else into
`MODEL_DETAILS/` of the project folder. Relative *default* paths (`MODEL/`,
`MODEL_DETAILS/`) resolve against the project folder (`base.project`): the clone when the
package runs from one, else the current folder. Paths given explicitly are taken as given.
"""

import dataclasses
import logging
import math
import os
import re
from typing import NamedTuple

from multilabel.base.errors import UserError
from multilabel.base.project import project_folder
from multilabel.labelling.run_folder import NAMES

DEFAULT_MODULE = "mobilenet_v2_100_224"
DETAILS = "MODEL_DETAILS"
# Fine-tuning defaults, measured on the scene set (docs/fine_tuning.md).
FINE_TUNE_LAYERS = 20
FINE_TUNE_EPOCHS = 5
FINE_TUNE_LEARNING_RATE = 1e-4
FINE_TUNE_VARIANTS = 2  # each training image and its mirror
# TensorFlow's rule for node names; the output must also differ from the graph's others
# (a clash with the module's own nodes is caught when the layer is built).
_NODE_NAME = r"[A-Za-z0-9.][A-Za-z0-9_./>-]*"
_TAKEN_NAMES = ("Placeholder", "BottleneckInputPlaceholder", "GroundTruthInput")
_LAYER_SCOPE = "final_retrain_ops/"


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """Every option of a run but the data and the module, with its default.

    An output path left None goes into the run folder under its usual name; "" leaves
    an optional output out (tflite_output_file, report_page, saved_model_dir).
    """

    num_classes: int | None = None  # read from the lists when None
    testing_percentage: int = 10
    validation_percentage: int = 10
    skip_invalid_images: bool = False
    model_dir: str | None = None  # None: MODEL in the project folder
    bottleneck_dir: str | None = None  # None: MODEL_DETAILS/bottlenecks in the project folder
    bottleneck_batch_size: int = 32
    bottleneck_engine: str = "auto"
    how_many_training_steps: int = 1800
    learning_rate: float = 0.001
    optimizer: str = "adam"
    l2_regularization: float = 1e-3
    pos_weight: object = None  # a float, or one per class
    train_batch_size: int = 100
    eval_step_interval: int = 10
    validation_batch_size: int = -1
    test_batch_size: int = -1
    random_seed: int = 0
    checkpoint_path: str | None = None
    resume: bool = False
    flip_left_right: bool = False
    random_crop: int = 0
    random_scale: int = 0
    random_brightness: int = 0
    fine_tune: bool = False
    fine_tune_layers: object = FINE_TUNE_LAYERS  # a count, or "all"
    fine_tune_epochs: int = FINE_TUNE_EPOCHS
    fine_tune_learning_rate: float = FINE_TUNE_LEARNING_RATE
    fine_tune_variants: int = FINE_TUNE_VARIANTS
    output_graph: str | None = None
    output_labels: str | None = None
    output_thresholds: str | None = None
    metrics_file: str | None = None
    test_predictions: str | None = None
    final_tensor_name: str = "final_result"
    intermediate_output_graphs_dir: str | None = None
    intermediate_store_frequency: int = 0
    summaries_dir: str | None = None
    saved_model_dir: str = ""
    tflite_output_file: str | None = None
    print_misclassified_test_images: bool = False
    report_page: str | None = None
    report_wrong_images: int = 100

    def check(self):
        """Raise UserError for a value that cannot work, before any work is done."""
        def need(condition, message):
            if not condition:
                raise UserError(message)

        need(self.num_classes is None or self.num_classes >= 1,
             "--num_classes must be at least 1")
        for name in ("testing_percentage", "validation_percentage"):
            need(0 <= getattr(self, name) < 100, f"--{name} must be in [0, 100)")
        for name in ("how_many_training_steps", "eval_step_interval", "bottleneck_batch_size",
                     "fine_tune_epochs", "fine_tune_variants"):
            need(getattr(self, name) >= 1, f"--{name} must be at least 1")
        for name in ("train_batch_size", "validation_batch_size", "test_batch_size"):
            need(getattr(self, name) >= 1 or getattr(self, name) == -1,
                 f"--{name} must be positive, or -1 for all")
        # NaN passes every comparison below; an infinite rate fails only at the first step.
        weights = (self.pos_weight if isinstance(self.pos_weight, (list, tuple))
                   else [self.pos_weight or 1])
        for name, values in (("learning_rate", [self.learning_rate]),
                             ("fine_tune_learning_rate", [self.fine_tune_learning_rate]),
                             ("l2_regularization", [self.l2_regularization]),
                             ("pos_weight", weights)):
            need(all(math.isfinite(v) for v in values), f"--{name} must be a finite number")
        need(self.learning_rate > 0 and self.fine_tune_learning_rate > 0,
             "--learning_rate and --fine_tune_learning_rate must be positive")
        need(self.l2_regularization >= 0, "--l2_regularization must not be negative")
        need(self.intermediate_store_frequency >= 0,
             "--intermediate_store_frequency must not be negative")
        need(self.report_wrong_images >= -1,
             "--report_wrong_images must not be negative, or -1 for all")
        need(self.random_crop >= 0 and self.random_scale >= 0
             and 0 <= self.random_brightness < 100,
             "--random_crop and --random_scale must not be negative, "
             "--random_brightness must be in [0, 100)")
        need(not isinstance(self.pos_weight, (list, tuple))
             or self.num_classes in (None, len(self.pos_weight)),
             "--pos_weight needs one value, or one per class")
        need(re.fullmatch(_NODE_NAME, self.final_tensor_name),
             f"--final_tensor_name {self.final_tensor_name!r} is not a node name (letters, "
             "digits and . _ - / >, starting with a letter, digit or .)")
        need(self.final_tensor_name not in _TAKEN_NAMES
             and not self.final_tensor_name.startswith(_LAYER_SCOPE),
             f"--final_tensor_name {self.final_tensor_name!r} names a node the exported "
             "graph already has")


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named recipe: its module(s) and the options it sets. Anything given beside it
    (a module, an option) wins over the preset's value."""

    module: str
    options: tuple = ()  # (option, value) pairs, TrainOptions fields


# Measured on three splits of the scene set: docs/performance.md#presets.
PRESETS = {
    "default": Preset(DEFAULT_MODULE),
    "best": Preset("mobilenet_v2_100_224,places365_resnet18",
                   (("fine_tune", True), ("fine_tune_layers", 4), ("fine_tune_epochs", 4))),
}


def preset_settings(preset="default", module=None, **options):
    """`(module handles, TrainOptions)` of `preset`, with `module` and `options` (given
    beside it) in place of its own values; UserError for an unknown preset."""
    if preset not in PRESETS:
        raise UserError(f"no preset {preset!r}: choose one of {', '.join(PRESETS)}")
    chosen = PRESETS[preset]
    return (module_handles(chosen.module if module is None else module),
            TrainOptions(**{**dict(chosen.options), **options}))


class TrainResult(NamedTuple):
    """What `train` made: the measures (metrics.json's content) and where it wrote."""

    measures: dict
    output_dir: str
    outputs: dict  # option name (output_graph, output_labels, ...) -> path written


def train(image_dir, output_dir=None, module=None, preset="default", **options):
    """Train and export a classifier on the lists in `image_dir`, as retrain.py does.

    `preset` names a recipe (PRESETS: "default", or "best" for the most accurate one);
    `module` is a module handle, or several separated by commas (or a sequence of them),
    None for the preset's; `options` are `TrainOptions` fields, each in place of the
    preset's value. Returns a `TrainResult`; raises UserError on bad input or bad
    option values, TypeError on an unknown option.
    """
    from multilabel.base.quiet_start import start_tensorflow

    modules, settings = preset_settings(preset, module, **options)
    settings.check()
    # TensorFlow's own deprecation notices about the v1 API used on purpose, and its
    # notes (through absl) on renaming a saved module set's inputs: not the user's concern.
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    start_tensorflow()  # before anything imports it, so without its C++ start-up lines
    config = retrain_config(image_dir, output_dir, modules, settings, preset)
    from multilabel import retraining

    measures = retraining.run(config)
    written = {name: getattr(config.outputs, name)
               for name in ("output_graph", "output_labels", "output_thresholds",
                            "metrics_file", "test_predictions", "tflite_output_file",
                            "report_page", "saved_model_dir")}
    written = {name: path for name, path in written.items() if path and os.path.exists(path)}
    return TrainResult(measures, os.path.dirname(config.outputs.output_graph), written)


def module_handles(module):
    """The module handles of `module` (comma-separated, or a sequence), as a tuple; UserError
    for an empty or repeated one."""
    handles = tuple(h.strip() for h in (module.split(",") if isinstance(module, str)
                                        else module))
    if not handles or not all(handles):
        raise UserError(f"empty module handle in {module!r}")
    repeated = sorted({h for h in handles if handles.count(h) > 1})
    if repeated:
        raise UserError(f"module {repeated[0]!r} given twice in {module!r}")
    return handles


def run_folder_paths(output_dir, settings):
    """{option: path} of every output: the option's own path where given, else its usual
    name in the run folder (`output_dir`; beside a given output_graph; else
    MODEL_DETAILS/ in the project folder)."""
    if output_dir is None:
        output_dir = (os.path.dirname(settings.output_graph) or "." if settings.output_graph
                      else os.path.join(project_folder(), DETAILS))
    return {name: os.path.join(output_dir, default) if getattr(settings, name) is None
            else getattr(settings, name) for name, default in NAMES.items()}


def retrain_config(image_dir, output_dir, modules, settings, preset="default"):
    """The run's frozen configuration (`retraining.RetrainConfig`)."""
    from multilabel import retraining
    from multilabel.data.distortions import Distortions
    from multilabel.export.stage import Outputs

    paths = run_folder_paths(output_dir, settings)
    project = project_folder()
    s = settings
    distortions = Distortions(s.flip_left_right, s.random_crop, s.random_scale,
                              s.random_brightness)
    return retraining.RetrainConfig(
        image_dir=image_dir, num_classes=s.num_classes,
        testing_percentage=s.testing_percentage,
        validation_percentage=s.validation_percentage,
        skip_invalid_images=s.skip_invalid_images, tfhub_modules=modules,
        model_dir=s.model_dir or os.path.join(project, "MODEL"),
        bottleneck_dir=s.bottleneck_dir or os.path.join(project, DETAILS, "bottlenecks"),
        bottleneck_batch_size=s.bottleneck_batch_size,
        bottleneck_engine=s.bottleneck_engine, test_batch_size=s.test_batch_size,
        checkpoint_path=paths["checkpoint_path"], resume=s.resume,
        print_misclassified_test_images=s.print_misclassified_test_images,
        distortions=Distortions() if s.fine_tune else distortions,
        train=dataclasses.replace(s, checkpoint_path=paths["checkpoint_path"]),
        outputs=Outputs(
            output_graph=paths["output_graph"], output_labels=paths["output_labels"],
            output_thresholds=paths["output_thresholds"], metrics_file=paths["metrics_file"],
            test_predictions=paths["test_predictions"],
            intermediate_output_graphs_dir=paths["intermediate_output_graphs_dir"],
            intermediate_store_frequency=s.intermediate_store_frequency,
            summaries_dir=paths["summaries_dir"], saved_model_dir=s.saved_model_dir,
            tflite_output_file=paths["tflite_output_file"], report_page=paths["report_page"],
            report_wrong_images=s.report_wrong_images,
            tflite_only_if_faithful=s.tflite_output_file is None),
        changed_flags=_changed(settings, modules, output_dir, preset), preset=preset,
        fine_tune=s.fine_tune)


def _changed(settings, modules, output_dir, preset):
    """(option, value) pairs that differ from the defaults, for the report page."""
    changed = [("preset", preset)] if preset != "default" else []
    if modules != (DEFAULT_MODULE,):
        changed.append(("tfhub_module", ",".join(modules)))
    if output_dir is not None:
        changed.append(("output_dir", output_dir))
    defaults = TrainOptions()
    return tuple(changed + [(f.name, getattr(settings, f.name))
                            for f in dataclasses.fields(settings)
                            if getattr(settings, f.name) != getattr(defaults, f.name)])
