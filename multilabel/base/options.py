"""Every option of a training run, declared once: the `TrainOptions` tree.

Each field is one option: its name is the retrain.py flag (`--how_many_training_steps`,
as the original retrain.py and TF Hub's call it), the keyword of `multilabel.train`,
and the attribute every stage reads; no stage renames it. Its metadata holds the rest
of the flag: the help text, the group it is listed under, how a command-line string
becomes a value, and for an output file its usual name in the run folder. retrain.py
builds its parser from these fields in a loop (`add_flags`, which the Beam commands use
for the flags they share with it), `TrainOptions.check` rejects values that
cannot work, and a preset is a dict of field values.

Adding an option is one field here (and a line in `check` if some values can't work),
then reading `options.NAME` where it is used; an output file is a field with `file=`,
and the run folder, the manifest's reader and `multilabel.train`'s list of written
files all follow (docs/development.md shows one option added).
"""

import argparse
import dataclasses
import math
import os
import re

from multilabel.base import project
from multilabel.base.arguments import positive_int_or
from multilabel.base.errors import UserError

DEFAULT_MODULE = "mobilenet_v2_100_224"
ALL_LAYERS = "all"  # --fine_tune_layers: every layer of the module
MAX_DISTORTION = 100  # --random_crop, --random_scale: percent, each at most doubling a side

# The groups of retrain.py's help, in order: name -> title ("" for the top, ungrouped).
GROUPS = {
    "": "",
    "data": "data",
    "module": "feature module and bottlenecks",
    "training": "training",
    "distortions": "distortions (slow: training images then go through the module at every "
                   "step; with --fine_tune they apply to fine-tuning's copies instead)",
    "fine_tuning": "fine-tuning (phase 2: after the head, train the module's top layers with "
                   "it on each training image and its mirror; see --fine_tune_variants)",
    "outputs": "outputs (one folder per run: each goes into --output_dir unless its flag is "
               "given)",
}

# TensorFlow's rule for node names; the output must also differ from the graph's others
# (a clash with the module's own nodes is caught when the layer is built).
_NODE_NAME = r"[A-Za-z0-9.][A-Za-z0-9_./>-]*"
_TAKEN_NAMES = ("Placeholder", "BottleneckInputPlaceholder", "GroundTruthInput")
_LAYER_SCOPE = "final_retrain_ops/"


def option(default, help, group, *, parse=None, choices=None, file=None):
    """A `TrainOptions` field: `default`, the flag's `help` (its default is added) and
    `group` (GROUPS); `parse` turns the flag's text into a value (by default the type of
    `default`; a bool is a switch); `choices` limits it; `file` is an output's usual name
    in the run folder (the option's value None means that name)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "group": group, "parse": parse, "choices": choices, "file": file})


def module_handles(module):
    """The module handles of `module` (comma-separated, or a sequence), as a tuple;
    UserError for an empty or repeated one."""
    handles = tuple(h.strip() for h in (module.split(",") if isinstance(module, str)
                                        else module))
    if not handles or not all(handles):
        raise UserError(f"empty module handle in {module!r}")
    repeated = sorted({h for h in handles if handles.count(h) > 1})
    if repeated:
        raise UserError(f"module {repeated[0]!r} given twice in {module!r}")
    return handles


def positive_weights(text):
    """--pos_weight: one positive number, or one per class separated by commas."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"not a number or comma-separated numbers: {text!r}") from None
    if any(v <= 0 for v in values):  # NaN passes, for check()'s message on it
        raise UserError("weights must be positive")
    return values[0] if len(values) == 1 else values


# The smaller TFLite exports --quantize can add beside the float32 one (export.quantization).
QUANTIZED = ("float16", "dynamic", "int8")


def quantized_variants(text):
    """--quantize: names of QUANTIZED separated by commas, each once; '' for none."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in QUANTIZED]
    if unknown:
        raise UserError(f"unknown quantization {unknown[0]!r}: choose from "
                        f"{', '.join(QUANTIZED)}")
    if len(set(names)) != len(names):
        raise UserError(f"a quantization given twice in {text!r}")
    return names


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """Every option of a training run, with its default.

    A path left None takes its default: the project's folders for the data, modules and
    bottleneck cache (base.project), the run folder for an output (`file=`). "" leaves
    an optional output out (tflite_output_file, report_page, saved_model_dir). Build
    one from a preset with `from_preset`.
    """

    preset: str = option(
        "default", "a recipe: 'default', or 'best' for the most accurate one, which sets "
        "--tfhub_module mobilenet_v2_100_224,places365_resnet18 --fine_tune "
        "--fine_tune_layers 4 --fine_tune_epochs 4 (docs/performance.md#presets). Flags "
        "given beside it win over its values",
        "", choices=("best", "default"))

    image_dir: str | None = option(
        None, "dataset folder holding dataset_train.lst, dataset_test.lst, class_names.txt "
        "and the images the lists name (default: DATASET in the project folder)", "data",
        parse=str)
    num_classes: int | None = option(
        None, "labels per image; read from the lists when omitted, an error when it "
        "disagrees with them", "data", parse=int)
    testing_percentage: int = option(
        10, "percent of the training list held out for testing, by the same file-name hash "
        "as validation; applies ONLY when --image_dir has no dataset_test.lst "
        "(data_generation.py writes one), and is ignored otherwise", "data")
    validation_percentage: int = option(
        10, "percent of the training list held out for validation, chosen by a stable hash "
        "of each file name", "data")
    skip_invalid_images: bool = option(
        False, "drop missing or undecodable images (with a count) instead of stopping", "data")
    dedupe: bool = option(
        False, "leave the test images that have a near-duplicate in the training or validation "
        "part (near_duplicates.csv) out of the test measures; the log says how much they "
        "move", "data")

    tfhub_module: tuple = option(
        (DEFAULT_MODULE,), "feature-vector module: a built-in name (retrain.py --help lists "
        "them; built into --model_dir on first use), a SavedModel folder, a file:// path or a TF Hub URL; "
        "several, separated by commas, to train on their features side by side (the 'best' "
        "preset's: mobilenet_v2_100_224,places365_resnet18)", "module", parse=module_handles)
    model_dir: str | None = option(
        None, "where named modules are built and kept (default: MODEL in the project "
        "folder)", "module", parse=str)
    bottleneck_dir: str | None = option(
        None, "bottleneck cache, keyed by module and image content, shared by runs "
        "(default: MODEL_DETAILS/bottlenecks in the project folder)", "module", parse=str)
    bottleneck_batch_size: int = option(
        32, "images per forward pass when computing bottlenecks", "module")
    bottleneck_engine: str = option(
        "auto", "what runs the module to compute bottlenecks: tflite (XNNPACK, several times "
        "faster on a CPU: docs/performance.md), tensorflow, or auto: tflite where its vectors "
        "match tensorflow's, else tensorflow. The exported graph is the same either way",
        "module",
        choices=("auto", "tflite", "tensorflow"))

    how_many_training_steps: int = option(
        1800, "training steps of the new layer (the head), and of each out-of-fold copy of it "
        "that thresholds are chosen on; fine-tuning counts --fine_tune_epochs instead",
        "training")
    learning_rate: float = option(
        0.001, "the head's learning rate, constant through its steps (fine-tuning has "
        "--fine_tune_learning_rate)", "training")
    optimizer: str = option(
        "adam", "the head's optimizer (fine-tuning always uses Adam)", "training",
        choices=("adam", "sgd"))
    l2_regularization: float = option(
        1e-3, "weight of the L2 penalty on the new layer's weights", "training")
    pos_weight: float | tuple | None = option(
        None, "weight of positive labels in the loss, one value or one per class separated "
        "by commas, against class imbalance (default: 1)", "training", parse=positive_weights)
    train_batch_size: int = option(100, "images per training step; -1 for all", "training")
    eval_step_interval: int = option(
        10, "evaluate on validation every N steps; the step with the best validation mAP is "
        "kept", "training")
    validation_batch_size: int = option(
        -1, "validation images per evaluation, drawn at random each time; -1 for all, "
        "which keeps early stopping stable", "training")
    test_batch_size: int = option(
        -1, "test images to evaluate at the end, drawn at random (by --random_seed) from "
        "the test list; -1 for all", "training")
    random_seed: int = option(
        0, "seed for initialisation, batches and distortions: the same seed repeats a run",
        "training")
    checkpoint_path: str | None = option(
        None, "checkpoint prefix, saved at evaluations (at most once a second) and at the "
        "last step", "training", parse=str,
        file=os.path.join("checkpoints", "retrain"))
    resume: bool = option(
        False, "continue from the last checkpoint at --checkpoint_path", "training")
    calibration: str = option(
        "temperature", "per-class calibration of the probabilities, fitted on out-of-fold "
        "predictions of the training images (after --fine_tune: on the validation part) and "
        "folded into the final layer, thresholds moved with it so label sets stay the same: "
        "platt (a scale and a shift of each class's logit), temperature (a scale), or none "
        "(docs/report.md#calibration)", "training", choices=("platt", "temperature", "none"))

    flip_left_right: bool = option(
        False, "randomly mirror half of the training images (default: off)", "distortions")
    random_crop: int = option(0, "percent margin to crop training images randomly",
                              "distortions")
    random_scale: int = option(0, "percent by which to scale training images up randomly",
                               "distortions")
    random_brightness: int = option(
        0, "percent by which to scale pixel values randomly up or down", "distortions")

    fine_tune: bool = option(
        False, "fine-tune after training the head, which then trains on cached bottlenecks "
        "without distortions; fine-tuning trains on --fine_tune_variants versions of each "
        "training image: by default the image and its mirror, and any further copies are "
        "distorted by the distortion flags (given none: --flip_left_right --random_crop 10 "
        "--random_scale 10 --random_brightness 10)",
        "fine_tuning")
    # The fine-tuning defaults are measured on the scene set (docs/fine_tuning.md).
    fine_tune_layers: int | str = option(
        20, "how many of the module's layers to train, counted from the output, or 'all'. A "
        "layer is a group of trainable variables with one name prefix (a convolution and "
        "its batch norm are two), in the order the module uses them", "fine_tuning",
        parse=positive_int_or(ALL_LAYERS))
    fine_tune_epochs: int = option(
        5, "passes over the training images, on one cosine schedule; the model at its end is "
        "kept unless the phase 1 model scores at least as high on validation mAP, and no "
        "middle epoch is ever kept", "fine_tuning")
    fine_tune_learning_rate: float = option(
        1e-4, "Adam's initial learning rate, decayed to zero on a cosine", "fine_tuning")
    fine_tune_variants: int = option(
        2, "versions of each training image whose tensors at the cut are cached and trained "
        "on in every epoch: the image, its mirror (where --flip_left_right or no distortion "
        "flag is given), then copies distorted at random by the distortion flags",
        "fine_tuning")

    output_dir: str | None = option(
        None, "the run folder (default: MODEL_DETAILS in the project folder, or the folder "
        "of --output_graph when that is given)", "outputs", parse=str)
    output_graph: str | None = option(
        None, "frozen graph: Placeholder [N,H,W,3] in [0,1] -> final_result "
        "[N,num_classes]", "outputs", parse=str, file="output_graph.pb")
    output_labels: str | None = option(
        None, "class names in output order", "outputs", parse=str, file="output_labels.txt")
    output_thresholds: str | None = option(
        None, "per-class decision thresholds, each maximising F1 on out-of-fold predictions "
        "of all training images (the validation part included), not on validation alone; "
        "beside them (same name, .json) whether an empty label set is allowed", "outputs",
        parse=str, file="output_thresholds.txt")
    metrics_file: str | None = option(
        None, "validation and test measures as JSON", "outputs", parse=str,
        file="metrics.json")
    test_predictions: str | None = option(
        None, "the test images' probabilities, one JSON object a line, as label_image.py "
        "--output_format json writes them", "outputs", parse=str,
        file="test_predictions.jsonl")
    label_issues: str | None = option(
        None, "the images whose labels look wrong, worst first, as CSV", "outputs", parse=str,
        file="label_issues.csv")
    final_tensor_name: str = option(
        "final_result", "name of the output node in the exported graph", "outputs")
    intermediate_output_graphs_dir: str | None = option(
        None, "where intermediate graphs go", "outputs", parse=str, file="intermediate_graph")
    intermediate_store_frequency: int = option(
        0, "write an intermediate graph every N steps; 0 for none", "outputs")
    summaries_dir: str | None = option(
        None, "TensorBoard summaries; each run gets a new sub-folder", "outputs", parse=str,
        file="retrain_logs")
    saved_model_dir: str = option(
        "", "also export a SavedModel (signature image -> prediction) here", "outputs")
    tflite_output_file: str | None = option(
        None, "the TFLite model, which label_image.py runs without TensorFlow; checked "
        "against the frozen graph, and left out (with a warning) where it differs by more "
        "than 1e-4 or cannot be converted, unless this flag names it (then a failed "
        "conversion stops the run and a difference is only warned about); '' for none",
        "outputs", parse=str,
        file="output_graph.tflite")
    quantize: tuple = option(
        (), "smaller TFLite models beside the float32 one: any of float16, dynamic, int8, "
        "separated by commas. Each is output_graph.NAME.tflite with its own thresholds "
        "(output_thresholds.NAME.txt, fitted on training images to agree with float's "
        "decisions), measured against float on the test part (metrics.json's exports), and "
        "left out with a warning where it loses more than 0.005 mAP or label accuracy "
        "(docs/mobile.md#smaller-models). (default: none; each adds a conversion and a pass "
        "over the test images to the run)", "outputs", parse=quantized_variants)
    print_misclassified_test_images: bool = option(
        False, "list test images whose predicted label set differs from the truth", "outputs")
    report_page: str | None = option(
        None, "one self-contained HTML page of the run: measures, precision-recall and "
        "training curves, the test images it got wrong; '' for none", "outputs", parse=str,
        file="report.html")
    report_wrong_images: int = option(
        100, "wrong test images the page shows at most, the worst by loss first, and as many "
        "images whose labels look wrong; -1 for all", "outputs")
    model_card: str | None = option(
        None, "a short Markdown model card of the run (data, modules and their terms, test "
        "measures with intervals, thresholds, intended use, known limits), for the user to "
        "edit; '' for none", "outputs", parse=str, file="model_card.md")
    near_duplicates: str | None = option(
        None, "pairs of images whose features are nearly the same (re-encoded, resized, "
        "cropped or recoloured copies), most similar first, as CSV", "outputs", parse=str,
        file="near_duplicates.csv")
    review_page: str | None = option(
        None, "one self-contained HTML page to review the labels that look wrong and the "
        "near-duplicates labelled differently, and save a corrected label file; '' for none",
        "outputs", parse=str, file="review.html")

    @classmethod
    def from_preset(cls, preset="default", **given):
        """The options of `preset` (PRESETS) with `given` in place of its values;
        UserError for an unknown preset, TypeError for an unknown option."""
        if preset not in PRESETS:
            raise UserError(f"no preset {preset!r}: choose one of {', '.join(PRESETS)}")
        if "tfhub_module" in given:
            given["tfhub_module"] = module_handles(given["tfhub_module"])
        if isinstance(given.get("quantize"), str):
            given["quantize"] = quantized_variants(given["quantize"])
        return cls(**{**PRESETS[preset], **given, "preset": preset})

    def changed(self):
        """`(option, value)` pairs that differ from the defaults, in declaration order."""
        return tuple((f.name, getattr(self, f.name)) for f in dataclasses.fields(self)
                     if getattr(self, f.name) != f.default)

    def check(self):
        """Raise UserError for a value that cannot work, before any work is done."""
        def need(condition, message):
            if not condition:
                raise UserError(message)

        need(self.preset in PRESETS, f"no preset {self.preset!r}")
        for f in dataclasses.fields(self):
            choices = f.metadata["choices"]
            need(not choices or getattr(self, f.name) in choices,
                 f"--{f.name} must be one of {', '.join(choices or ())}")
        need(self.num_classes is None or self.num_classes >= 1,
             "--num_classes must be at least 1")
        for name in ("testing_percentage", "validation_percentage"):
            need(0 <= getattr(self, name) < 100, f"--{name} must be in [0, 100)")
        for name in ("how_many_training_steps", "eval_step_interval", "bottleneck_batch_size",
                     "fine_tune_epochs", "fine_tune_variants"):
            need(getattr(self, name) >= 1, f"--{name} must be at least 1")
        need(self.fine_tune_layers == ALL_LAYERS or (
            isinstance(self.fine_tune_layers, int) and self.fine_tune_layers >= 1),
            f"--fine_tune_layers must be at least 1, or {ALL_LAYERS!r}")
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
        need(all(w > 0 for w in weights), "--pos_weight must be positive")
        need(self.intermediate_store_frequency >= 0,
             "--intermediate_store_frequency must not be negative")
        need(self.report_wrong_images >= -1,
             "--report_wrong_images must not be negative, or -1 for all")
        # Each of crop and scale at most doubles the image's side before the crop: 100000
        # made every training image 1000 times larger a side, past 4 GB in seconds.
        need(0 <= self.random_crop <= MAX_DISTORTION and 0 <= self.random_scale <= MAX_DISTORTION
             and 0 <= self.random_brightness < 100,
             f"--random_crop and --random_scale must be in [0, {MAX_DISTORTION}], "
             "--random_brightness in [0, 100)")
        need(0 <= self.random_seed < 2**63, "--random_seed must be in [0, 2**63)")
        need(not isinstance(self.pos_weight, (list, tuple))
             or self.num_classes in (None, len(self.pos_weight)),
             "--pos_weight needs one value, or one per class")
        need(isinstance(self.quantize, (tuple, list)) and len(set(self.quantize)) == len(
            self.quantize) and all(q in QUANTIZED for q in self.quantize),
            f"--quantize takes names from {', '.join(QUANTIZED)}, each once")
        need(not self.quantize or self.tflite_output_file != "",
             "--quantize makes copies of the TFLite model: not with --tflite_output_file ''")
        need(re.fullmatch(_NODE_NAME, self.final_tensor_name),
             f"--final_tensor_name {self.final_tensor_name!r} is not a node name (letters, "
             "digits and . _ - / >, starting with a letter, digit or .)")
        need(self.final_tensor_name not in _TAKEN_NAMES
             and not self.final_tensor_name.startswith(_LAYER_SCOPE),
             f"--final_tensor_name {self.final_tensor_name!r} names a node the exported "
             "graph already has")


# Named recipes: option values that flags given beside them override. Measured on three
# splits of the scene set: docs/performance.md#presets.
PRESETS = {
    "default": {},
    "best": {"tfhub_module": (DEFAULT_MODULE, "places365_resnet18"), "fine_tune": True,
             "fine_tune_layers": 4, "fine_tune_epochs": 4},
}


def fields():
    """TrainOptions' fields, in declaration order: one per option."""
    return dataclasses.fields(TrainOptions)


def output_files():
    """{option: its usual name in the run folder} of every output with one."""
    return {f.name: f.metadata["file"] for f in fields() if f.metadata["file"]}


def resolve(options):
    """`options` with every default path in place: the project's data, module and cache
    folders (base.project), and each output's usual name in the run folder
    (`output_dir`; beside a given output_graph; else MODEL_DETAILS/ of the project)."""
    output_dir = options.output_dir
    if output_dir is None:
        output_dir = (os.path.dirname(options.output_graph) or "." if options.output_graph
                      else project.default_path(project.DETAILS))
    outputs = {name: os.path.join(output_dir, file) for name, file in output_files().items()
               if getattr(options, name) is None}
    return dataclasses.replace(
        options, **outputs, output_dir=output_dir,
        image_dir=options.image_dir or project.default_path(project.DATASET),
        model_dir=options.model_dir or project.default_path(project.MODELS),
        bottleneck_dir=options.bottleneck_dir or project.default_path(project.BOTTLENECKS))


def add_flags(parser, names=None):
    """Add to `parser` a flag `--NAME` for each `TrainOptions` field (only those in
    `names` where given), built from its metadata: type, choices, help with its default.
    With every field they are listed in their groups (GROUPS).

    No flag has a default here (argparse.SUPPRESS), so what a parse returns is exactly
    the flags given (`given`): a preset yields to them, and `TrainOptions` fills
    in the rest."""
    groups = {}
    for field in (f for f in fields() if names is None or f.name in names):
        meta = field.metadata
        group = meta["group"] if names is None else ""
        if group not in groups:
            title = GROUPS[group]
            groups[group] = parser.add_argument_group(title) if title else parser
        help = f"{meta['help']} {_default_text(field)}".strip()
        if isinstance(field.default, bool):
            groups[group].add_argument(f"--{field.name}", action="store_true",
                                       default=argparse.SUPPRESS, help=help)
        else:
            groups[group].add_argument(
                f"--{field.name}", type=_flag_type(meta["parse"] or type(field.default)),
                choices=meta["choices"], default=argparse.SUPPRESS, help=help)


def given(namespace):
    """{option: value} of the option flags a parse (`add_flags`) found given."""
    names = {f.name for f in fields()}
    return {name: value for name, value in vars(namespace).items() if name in names}


def _default_text(field):
    """What the help says of a flag's default, unless its own text says it."""
    meta = field.metadata
    if "(default" in meta["help"] or isinstance(field.default, bool):
        return ""
    if meta["file"]:
        return f"(default: {meta['file']} in --output_dir)"
    if field.default is None or field.default == "":
        return ""
    value = field.default
    return f"(default: {','.join(value) if isinstance(value, tuple) else value})"


def _flag_type(parse):
    """`parse` as an argparse type: its UserError becomes argparse's one-line error."""
    def convert(text):
        try:
            return parse(text)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = parse.__name__  # argparse names the type in "invalid X value"
    return convert
