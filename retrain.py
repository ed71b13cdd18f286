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
import dataclasses
import logging
import os
import sys

from multilabel import api
from multilabel.base.errors import EXIT_INTERRUPTED, EXIT_OK, UserError

# TensorFlow's C++ start-up chatter would bury the one line an error prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

D = api.TrainOptions()  # every option's default, from the package
DETAILS = api.DETAILS
BUILT_IN = "BUILT_IN_MODULES"  # replaced by the recipes' names when help is shown
IN_RUN = "(default: %s in --output_dir)"  # an output whose flag is not given


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False)
    p.add_argument("-h", "--help", action=_HelpWithModules, help="show this help and exit")
    data = p.add_argument_group("data")
    data.add_argument("--image_dir",
                      help="dataset folder holding dataset_train.lst, dataset_test.lst, "
                           "class_names.txt and the images the lists name (default: DATASET "
                           "in the project folder)")
    data.add_argument("--num_classes", type=int,
                      help="labels per image; read from the lists when omitted, an error when "
                           "it disagrees with them")
    data.add_argument("--testing_percentage", type=int, default=D.testing_percentage,
                      help="percent of the training list held out for testing, by the same "
                           "file-name hash as validation; applies ONLY when --image_dir has "
                           "no dataset_test.lst (data_generation.py writes one), and is "
                           "ignored otherwise (default: %(default)s)")
    data.add_argument("--validation_percentage", type=int, default=D.validation_percentage,
                      help="percent of the training list held out for validation, chosen by a "
                           "stable hash of each file name (default: %(default)s)")
    data.add_argument("--skip_invalid_images", action="store_true",
                      help="drop missing or undecodable images (with a count) instead of stopping")

    p.add_argument("--preset", default="default", choices=sorted(api.PRESETS),
                   help="a recipe: 'default', or 'best' for the most accurate one (a module "
                        "set, fine-tuned; see docs/performance.md). Flags given beside it "
                        "win over its values (default: %(default)s)")
    module = p.add_argument_group("feature module and bottlenecks")
    module.add_argument("--tfhub_module", default=api.DEFAULT_MODULE, type=_module_handles,
                        help=f"feature-vector module: a built-in name ({BUILT_IN}; built "
                             "into --model_dir on first use), a SavedModel folder, a file:// "
                             "path or a TF Hub URL; several, "
                             "separated by commas, to train on their features side by side "
                             "(default: the preset's; %(default)s for the default preset)")
    module.add_argument("--model_dir",
                        help="where named modules are built and kept (default: MODEL in the "
                             "project folder)")
    module.add_argument("--bottleneck_dir",
                        help="bottleneck cache, keyed by module and image content, shared by "
                             f"runs (default: {DETAILS}/bottlenecks in the project folder)")
    module.add_argument("--bottleneck_batch_size", type=int, default=D.bottleneck_batch_size,
                        help="images per forward pass when computing bottlenecks "
                             "(default: %(default)s)")
    module.add_argument("--bottleneck_engine", choices=("auto", "tflite", "tensorflow"),
                        default=D.bottleneck_engine,
                        help="what runs the module to compute bottlenecks: tflite (XNNPACK, "
                             "about 4 times faster on a CPU), tensorflow, or auto: tflite "
                             "where its vectors match tensorflow's, else tensorflow. The "
                             "exported graph is the same either way (default: %(default)s)")

    train = p.add_argument_group("training")
    train.add_argument("--how_many_training_steps", type=int, default=D.how_many_training_steps,
                       help="training steps (default: %(default)s)")
    train.add_argument("--learning_rate", type=float, default=D.learning_rate,
                       help="learning rate (default: %(default)s)")
    train.add_argument("--optimizer", choices=("adam", "sgd"), default=D.optimizer,
                       help="optimizer (default: %(default)s)")
    train.add_argument("--l2_regularization", type=float, default=D.l2_regularization,
                       help="weight of the L2 penalty on the new layer's weights "
                            "(default: %(default)s)")
    train.add_argument("--pos_weight", type=_pos_weight,
                       help="weight of positive labels in the loss, one value or one per class "
                            "separated by commas, against class imbalance (default: 1)")
    train.add_argument("--train_batch_size", type=int, default=D.train_batch_size,
                       help="images per training step; -1 for all (default: %(default)s)")
    train.add_argument("--eval_step_interval", type=int, default=D.eval_step_interval,
                       help="evaluate on validation every N steps; the step with the best "
                            "validation mAP is kept (default: %(default)s)")
    train.add_argument("--validation_batch_size", type=int, default=D.validation_batch_size,
                       help="validation images per evaluation; -1 for all, which keeps early "
                            "stopping stable (default: %(default)s)")
    train.add_argument("--test_batch_size", type=int, default=D.test_batch_size,
                       help="test images to evaluate at the end; -1 for all (default: %(default)s)")
    train.add_argument("--random_seed", type=int, default=D.random_seed,
                       help="seed for initialisation, batches and distortions: the same seed "
                            "repeats a run (default: %(default)s)")
    train.add_argument("--checkpoint_path",
                       help="checkpoint prefix, saved at each evaluation "
                            + IN_RUN % "checkpoints/retrain")
    train.add_argument("--resume", action="store_true",
                       help="continue from the last checkpoint at --checkpoint_path")

    distort = p.add_argument_group(
        "distortions (slow: training images then go through the module at every step)")
    distort.add_argument("--flip_left_right", action="store_true",
                         help="randomly mirror half of the training images")
    distort.add_argument("--random_crop", type=int, default=D.random_crop,
                         help="percent margin to crop training images randomly")
    distort.add_argument("--random_scale", type=int, default=D.random_scale,
                         help="percent by which to scale training images up randomly")
    distort.add_argument("--random_brightness", type=int, default=D.random_brightness,
                         help="percent by which to scale pixel values randomly up or down")

    tune = p.add_argument_group(
        "fine-tuning (phase 2: after the head, train the module's top layers with it on "
        "distorted images)")
    tune.add_argument("--fine_tune", action="store_true",
                      help="fine-tune after training the head, which then trains on cached "
                           "bottlenecks; the distortion flags apply to fine-tuning, and "
                           "without any it uses --flip_left_right --random_crop 10 "
                           "--random_scale 10 --random_brightness 10")
    tune.add_argument("--fine_tune_layers", type=_layers, default=D.fine_tune_layers,
                      help="how many of the module's layers to train, counted from the "
                           "output, or 'all'. A layer is a group of trainable variables "
                           "with one name prefix (a convolution and its batch norm are two), "
                           "in the order the module uses them (default: %(default)s)")
    tune.add_argument("--fine_tune_epochs", type=int, default=D.fine_tune_epochs,
                      help="passes over the training images, on one cosine schedule; the "
                           "model at its end is kept unless the phase 1 model scores at "
                           "least as high on validation mAP, and no middle epoch is ever "
                           "kept (default: %(default)s)")
    tune.add_argument("--fine_tune_learning_rate", type=float,
                      default=D.fine_tune_learning_rate,
                      help="Adam's initial learning rate, decayed to zero on a cosine "
                           "(default: %(default)s)")
    tune.add_argument("--fine_tune_variants", type=int, default=D.fine_tune_variants,
                      help="versions of each training image whose tensors at the cut are "
                           "cached and trained on in every epoch: the image, its mirror "
                           "(with --flip_left_right), then copies distorted at random by "
                           "the distortion flags (default: %(default)s)")

    out = p.add_argument_group(
        "outputs (one folder per run: each goes into --output_dir unless its flag is given)")
    out.add_argument("--output_dir",
                     help=f"the run folder (default: {DETAILS} in the project folder, or the "
                          "folder of --output_graph when that is given)")
    out.add_argument("--output_graph",
                     help="frozen graph: Placeholder [N,H,W,3] in [0,1] -> final_result "
                          "[N,num_classes] " + IN_RUN % "output_graph.pb")
    out.add_argument("--output_labels",
                     help="class names in output order " + IN_RUN % "output_labels.txt")
    out.add_argument("--output_thresholds",
                     help="per-class decision thresholds, each maximising F1 on out-of-fold "
                          "predictions of all training images (the validation part included), "
                          "not on validation alone; beside them (same name, .json) whether an "
                          "empty label set is allowed "
                          + IN_RUN % "output_thresholds.txt")
    out.add_argument("--metrics_file",
                     help="validation and test measures as JSON " + IN_RUN % "metrics.json")
    out.add_argument("--test_predictions",
                     help="the test images' probabilities, one JSON object a line, as "
                          "label_image.py --output_format json writes them "
                          + IN_RUN % "test_predictions.jsonl")
    out.add_argument("--final_tensor_name", default=D.final_tensor_name,
                     help="name of the output node in the exported graph (default: %(default)s)")
    out.add_argument("--intermediate_output_graphs_dir",
                     help="where intermediate graphs go " + IN_RUN % "intermediate_graph")
    out.add_argument("--intermediate_store_frequency", type=int,
                     default=D.intermediate_store_frequency,
                     help="write an intermediate graph every N steps; 0 for none "
                          "(default: %(default)s)")
    out.add_argument("--summaries_dir",
                     help="TensorBoard summaries; each run gets a new sub-folder "
                          + IN_RUN % "retrain_logs")
    out.add_argument("--saved_model_dir", default=D.saved_model_dir,
                     help="also export a SavedModel (signature image -> prediction) here")
    out.add_argument("--tflite_output_file",
                     help="the TFLite model, which label_image.py runs without TensorFlow; "
                          "checked against the frozen graph, and by default left out (with "
                          "a warning) where it differs by more than 1e-4; '' for none "
                          + IN_RUN % "output_graph.tflite")
    out.add_argument("--print_misclassified_test_images", action="store_true",
                     help="list test images whose predicted label set differs from the truth")
    out.add_argument("--report_page",
                     help="one self-contained HTML page of the run: measures, precision-recall "
                          "and training curves, the test images it got wrong; '' for none "
                          + IN_RUN % "report.html")
    out.add_argument("--report_wrong_images", type=int, default=D.report_wrong_images,
                     help="wrong test images the page shows at most, the worst by loss first, "
                          "and as many images whose labels look wrong; -1 for all "
                          "(default: %(default)s)")
    p.add_argument("--logging_verbosity", default="INFO",
                   choices=("DEBUG", "INFO", "WARN", "ERROR", "FATAL"),
                   help="how much to log (default: %(default)s)")
    args = p.parse_args(argv)
    args.given = _given(p, argv)
    _check(p, args)
    return args


def _given(parser, argv):
    """The names of the flags given in `argv` (a preset yields to them): what a parse
    with every default suppressed returns."""
    defaults = {action: action.default for action in parser._actions}
    try:
        for action in defaults:
            action.default = argparse.SUPPRESS
        return frozenset(vars(parser.parse_args(argv)))
    finally:
        for action, default in defaults.items():
            action.default = default


class _HelpWithModules(argparse.Action):
    """-h: the help, with every built-in module name read from the module recipes. Those
    import TensorFlow, so they are read only when help is asked for, not on every run."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from multilabel.base.quiet_start import start_tensorflow

        start_tensorflow()
        from multilabel.features.feature_modules import known_modules

        flag = next(a for a in parser._actions if a.dest == "tfhub_module")
        flag.help = flag.help.replace(BUILT_IN, ", ".join(known_modules()))
        parser.print_help()
        parser.exit()


def _pos_weight(text):
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or comma-separated numbers: {text!r}")
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("weights must be positive")
    return values[0] if len(values) == 1 else values


def _module_handles(text):
    """The comma-separated module handles of --tfhub_module, as a tuple."""
    try:
        return api.module_handles(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _layers(text):
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'all': {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _check(parser, args):
    """Reject flag values that can't work, before any work is done (TrainOptions.check)."""
    try:
        options(args).check()
    except UserError as e:
        parser.error(str(e))


def options(args):
    """The parsed flags as the package's TrainOptions (flag `--name` is field `name`):
    the preset's values, and the flags given in their place."""
    return api.preset_settings(args.preset, **given_options(args))[1]


def given_options(args):
    """{TrainOptions field: value} of the flags given on the command line."""
    names = {f.name for f in dataclasses.fields(api.TrainOptions)}
    return {k: v for k, v in vars(args).items() if k in names and k in args.given}


def main(argv=None):
    args = parse_args(argv)
    level = "CRITICAL" if args.logging_verbosity == "FATAL" else args.logging_verbosity
    logging.basicConfig(level=logging.getLevelName(level),
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        # TensorFlow loads only once the flags are fine, without its C++ start-up lines.
        api.train(args.image_dir or os.path.join(api.project_folder(), "DATASET"),
                  args.output_dir, args.tfhub_module if "tfhub_module" in args.given else None,
                  args.preset, **given_options(args))
    except UserError as e:
        for line in e.details:
            print(line, file=sys.stderr)
        print(f"retrain.py: error: {e}", file=sys.stderr)
        return e.exit_code  # 2 for bad input, 1 for a full disk
    except KeyboardInterrupt:
        # Every file is written atomically, so stopping anywhere is safe.
        print("retrain.py: interrupted; finished bottlenecks are kept, and --resume continues "
              "from the last checkpoint", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
