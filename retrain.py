"""Retrain a feature-vector module's last layer for multi-label image classification.

A modern, multi-label version of TensorFlow Hub's retrain.py. It reads
`dataset_train.lst` and `dataset_test.lst` from --image_dir (see data_generation.py),
runs every image once through a frozen ImageNet feature module and caches the
resulting "bottleneck" vectors, trains a new sigmoid layer on them, and exports a
frozen graph that maps float images in [0, 1] to one probability per label:

    python retrain.py --image_dir ./DATASET/ --tfhub_module mobilenet_v2_100_224 --num_classes=5

Then label new images with label_image.py. Progress and results are logged;
--summaries_dir holds TensorBoard summaries (a new sub-folder for each run).
"""

import argparse
import logging
import math
import os
import re
import sys

from multilabel.base.errors import EXIT_INTERRUPTED, EXIT_OK, UserError
from multilabel.base.quiet_start import start_tensorflow

# TensorFlow's C++ start-up chatter would bury the one line an error prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DETAILS = "MODEL_DETAILS"
BUILT_IN = "BUILT_IN_MODULES"  # replaced by the recipes' names when help is shown
# Fine-tuning defaults, measured on the scene set (docs/fine_tuning.md).
FINE_TUNE_LAYERS = 20
FINE_TUNE_EPOCHS = 5
FINE_TUNE_LEARNING_RATE = 1e-4
# TensorFlow's rule for node names; the output must also differ from the graph's others
# (a clash with the module's own nodes is caught when the layer is built).
_NODE_NAME = r"[A-Za-z0-9.][A-Za-z0-9_./>-]*"
_TAKEN_NAMES = ("Placeholder", "BottleneckInputPlaceholder", "GroundTruthInput")
_LAYER_SCOPE = "final_retrain_ops/"


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False)
    p.add_argument("-h", "--help", action=_HelpWithModules, help="show this help and exit")
    data = p.add_argument_group("data")
    data.add_argument("--image_dir", default="./DATASET/",
                      help="dataset folder holding dataset_train.lst, dataset_test.lst, "
                           "class_names.txt and the images the lists name (default: %(default)s)")
    data.add_argument("--num_classes", type=int,
                      help="labels per image; read from the lists when omitted, an error when "
                           "it disagrees with them")
    data.add_argument("--testing_percentage", type=int, default=10,
                      help="percent of the training list held out for testing, by the same "
                           "file-name hash as validation; applies ONLY when --image_dir has "
                           "no dataset_test.lst (data_generation.py writes one), and is "
                           "ignored otherwise (default: %(default)s)")
    data.add_argument("--validation_percentage", type=int, default=10,
                      help="percent of the training list held out for validation, chosen by a "
                           "stable hash of each file name (default: %(default)s)")
    data.add_argument("--skip_invalid_images", action="store_true",
                      help="drop missing or undecodable images (with a count) instead of stopping")

    module = p.add_argument_group("feature module and bottlenecks")
    module.add_argument(
        "--tfhub_module", default="mobilenet_v2_100_224", type=_module_handles,
        help=f"feature-vector module: a built-in name ({BUILT_IN}; built into --model_dir on "
             "first use), a SavedModel folder, a file:// path or a TF Hub URL; several, "
             "separated by commas, to train on their features side by side "
             "(default: %(default)s)")
    module.add_argument("--model_dir", default="MODEL",
                        help="where named modules are built and kept (default: %(default)s)")
    module.add_argument("--bottleneck_dir", default=f"{DETAILS}/bottlenecks",
                        help="bottleneck cache, keyed by module and image content "
                             "(default: %(default)s)")
    module.add_argument("--bottleneck_batch_size", type=int, default=32,
                        help="images per forward pass when computing bottlenecks "
                             "(default: %(default)s)")
    module.add_argument("--bottleneck_engine", choices=("auto", "tflite", "tensorflow"),
                        default="auto",
                        help="what runs the module to compute bottlenecks: tflite (XNNPACK, "
                             "about 4 times faster on a CPU), tensorflow, or auto: tflite "
                             "where its vectors match tensorflow's, else tensorflow. The "
                             "exported graph is the same either way (default: %(default)s)")

    train = p.add_argument_group("training")
    train.add_argument("--how_many_training_steps", type=int, default=1800,
                       help="training steps (default: %(default)s)")
    train.add_argument("--learning_rate", type=float, default=0.001,
                       help="learning rate (default: %(default)s)")
    train.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                       help="optimizer (default: %(default)s)")
    train.add_argument("--l2_regularization", type=float, default=1e-3,
                       help="weight of the L2 penalty on the new layer's weights "
                            "(default: %(default)s)")
    train.add_argument("--pos_weight", type=_pos_weight,
                       help="weight of positive labels in the loss, one value or one per class "
                            "separated by commas, against class imbalance (default: 1)")
    train.add_argument("--train_batch_size", type=int, default=100,
                       help="images per training step; -1 for all (default: %(default)s)")
    train.add_argument("--eval_step_interval", type=int, default=10,
                       help="evaluate on validation every N steps; the step with the best "
                            "validation mAP is kept (default: %(default)s)")
    train.add_argument("--validation_batch_size", type=int, default=-1,
                       help="validation images per evaluation; -1 for all, which keeps early "
                            "stopping stable (default: %(default)s)")
    train.add_argument("--test_batch_size", type=int, default=-1,
                       help="test images to evaluate at the end; -1 for all (default: %(default)s)")
    train.add_argument("--random_seed", type=int, default=0,
                       help="seed for initialisation, batches and distortions: the same seed "
                            "repeats a run (default: %(default)s)")
    train.add_argument("--checkpoint_path", default=f"{DETAILS}/checkpoints/retrain",
                       help="checkpoint prefix, saved at each evaluation (default: %(default)s)")
    train.add_argument("--resume", action="store_true",
                       help="continue from the last checkpoint at --checkpoint_path")

    distort = p.add_argument_group(
        "distortions (slow: training images then go through the module at every step)")
    distort.add_argument("--flip_left_right", action="store_true",
                         help="randomly mirror half of the training images")
    distort.add_argument("--random_crop", type=int, default=0,
                         help="percent margin to crop training images randomly")
    distort.add_argument("--random_scale", type=int, default=0,
                         help="percent by which to scale training images up randomly")
    distort.add_argument("--random_brightness", type=int, default=0,
                         help="percent by which to scale pixel values randomly up or down")

    tune = p.add_argument_group(
        "fine-tuning (phase 2: after the head, train the module's top layers with it on "
        "distorted images)")
    tune.add_argument("--fine_tune", action="store_true",
                      help="fine-tune after training the head, which then trains on cached "
                           "bottlenecks; the distortion flags apply to fine-tuning, and "
                           "without any it uses --flip_left_right --random_crop 10 "
                           "--random_scale 10 --random_brightness 10")
    tune.add_argument("--fine_tune_layers", type=_layers, default=FINE_TUNE_LAYERS,
                      help="how many of the module's layers to train, counted from the "
                           "output, or 'all'. A layer is a group of trainable variables "
                           "with one name prefix (a convolution and its batch norm are two), "
                           "in the order the module uses them (default: %(default)s)")
    tune.add_argument("--fine_tune_epochs", type=int, default=FINE_TUNE_EPOCHS,
                      help="passes over the training images, on one cosine schedule; the "
                           "model at its end is kept unless the phase 1 model scores at "
                           "least as high on validation mAP, and no middle epoch is ever "
                           "kept (default: %(default)s)")
    tune.add_argument("--fine_tune_learning_rate", type=float, default=FINE_TUNE_LEARNING_RATE,
                      help="Adam's initial learning rate, decayed to zero on a cosine "
                           "(default: %(default)s)")

    out = p.add_argument_group("outputs")
    out.add_argument("--output_graph", default=f"{DETAILS}/output_graph.pb",
                     help="frozen graph: Placeholder [N,H,W,3] in [0,1] -> final_result "
                          "[N,num_classes] (default: %(default)s)")
    out.add_argument("--output_labels", default=f"{DETAILS}/output_labels.txt",
                     help="class names in output order (default: %(default)s)")
    out.add_argument("--output_thresholds", default=f"{DETAILS}/output_thresholds.txt",
                     help="per-class decision thresholds, each maximising F1 on out-of-fold "
                          "predictions of all training images (the validation part included), "
                          "not on validation alone (default: %(default)s)")
    out.add_argument("--metrics_file", default=f"{DETAILS}/metrics.json",
                     help="validation and test measures as JSON (default: %(default)s)")
    out.add_argument("--test_predictions", default=f"{DETAILS}/test_predictions.jsonl",
                     help="the test images' probabilities, one JSON object a line, as "
                          "label_image.py --output_format json writes them (default: %(default)s)")
    out.add_argument("--final_tensor_name", default="final_result",
                     help="name of the output node in the exported graph (default: %(default)s)")
    out.add_argument("--intermediate_output_graphs_dir", default=f"{DETAILS}/intermediate_graph",
                     help="where intermediate graphs go (default: %(default)s)")
    out.add_argument("--intermediate_store_frequency", type=int, default=0,
                     help="write an intermediate graph every N steps; 0 for none "
                          "(default: %(default)s)")
    out.add_argument("--summaries_dir", default=f"{DETAILS}/retrain_logs",
                     help="TensorBoard summaries; each run gets a new sub-folder "
                          "(default: %(default)s)")
    out.add_argument("--saved_model_dir", default="",
                     help="also export a SavedModel (signature image -> prediction) here")
    out.add_argument("--tflite_output_file", default="",
                     help="also export a TFLite model here, checked against the frozen graph")
    out.add_argument("--print_misclassified_test_images", action="store_true",
                     help="list test images whose predicted label set differs from the truth")
    out.add_argument("--report_page", default=f"{DETAILS}/report.html",
                     help="one self-contained HTML page of the run: measures, precision-recall "
                          "and training curves, the test images it got wrong; '' for none "
                          "(default: %(default)s)")
    out.add_argument("--report_wrong_images", type=int, default=100,
                     help="wrong test images the page shows at most, the worst by loss first, "
                          "and as many images whose labels look wrong; -1 for all "
                          "(default: %(default)s)")
    p.add_argument("--logging_verbosity", default="INFO",
                   choices=("DEBUG", "INFO", "WARN", "ERROR", "FATAL"),
                   help="how much to log (default: %(default)s)")
    args = p.parse_args(argv)
    _check(p, args)
    return args


class _HelpWithModules(argparse.Action):
    """-h: the help, with every built-in module name read from the module recipes. Those
    import TensorFlow, so they are read only when help is asked for, not on every run."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
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
    handles = tuple(h.strip() for h in text.split(","))
    if not all(handles):
        raise argparse.ArgumentTypeError(f"empty module handle in {text!r}")
    repeated = sorted({h for h in handles if handles.count(h) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"module {repeated[0]!r} given twice in {text!r}")
    return handles


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
    """Reject flag values that can't work, before any work is done."""
    if args.num_classes is not None and args.num_classes < 1:
        parser.error("--num_classes must be at least 1")
    for name in ("testing_percentage", "validation_percentage"):
        if not 0 <= getattr(args, name) < 100:
            parser.error(f"--{name} must be in [0, 100)")
    for name in ("how_many_training_steps", "eval_step_interval", "bottleneck_batch_size",
                 "fine_tune_epochs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    for name in ("train_batch_size", "validation_batch_size", "test_batch_size"):
        if getattr(args, name) == 0 or getattr(args, name) < -1:
            parser.error(f"--{name} must be positive, or -1 for all")
    # NaN passes every comparison below; an infinite rate fails only at the first step.
    weights = args.pos_weight if isinstance(args.pos_weight, list) else [args.pos_weight or 1]
    for name, values in (("learning_rate", [args.learning_rate]),
                         ("fine_tune_learning_rate", [args.fine_tune_learning_rate]),
                         ("l2_regularization", [args.l2_regularization]),
                         ("pos_weight", weights)):
        if not all(math.isfinite(v) for v in values):
            parser.error(f"--{name} must be a finite number")
    if args.learning_rate <= 0 or args.fine_tune_learning_rate <= 0:
        parser.error("--learning_rate and --fine_tune_learning_rate must be positive")
    if args.l2_regularization < 0:
        parser.error("--l2_regularization must not be negative")
    if args.intermediate_store_frequency < 0:
        parser.error("--intermediate_store_frequency must not be negative")
    if args.report_wrong_images < -1:
        parser.error("--report_wrong_images must not be negative, or -1 for all")
    if args.random_crop < 0 or args.random_scale < 0 or not 0 <= args.random_brightness < 100:
        parser.error("--random_crop and --random_scale must not be negative, "
                     "--random_brightness must be in [0, 100)")
    if isinstance(args.pos_weight, list) and args.num_classes not in (None, len(args.pos_weight)):
        parser.error("--pos_weight needs one value, or one per class")
    if not re.fullmatch(_NODE_NAME, args.final_tensor_name):
        parser.error(f"--final_tensor_name {args.final_tensor_name!r} is not a node name "
                     "(letters, digits and . _ - / >, starting with a letter, digit or .)")
    if args.final_tensor_name in _TAKEN_NAMES or args.final_tensor_name.startswith(
            _LAYER_SCOPE):
        parser.error(f"--final_tensor_name {args.final_tensor_name!r} names a node the "
                     "exported graph already has")


def _config(args, retraining):
    """The run's frozen configuration, from the parsed flags."""
    from multilabel.data.distortions import Distortions
    from multilabel.export.stage import Outputs
    from multilabel.training.trainer import TrainConfig

    distortions = Distortions(args.flip_left_right, args.random_crop, args.random_scale,
                              args.random_brightness)

    return retraining.RetrainConfig(
        image_dir=args.image_dir, num_classes=args.num_classes,
        testing_percentage=args.testing_percentage,
        validation_percentage=args.validation_percentage,
        skip_invalid_images=args.skip_invalid_images, tfhub_modules=args.tfhub_module,
        model_dir=args.model_dir, bottleneck_dir=args.bottleneck_dir,
        bottleneck_batch_size=args.bottleneck_batch_size,
        bottleneck_engine=args.bottleneck_engine, test_batch_size=args.test_batch_size,
        checkpoint_path=args.checkpoint_path, resume=args.resume,
        print_misclassified_test_images=args.print_misclassified_test_images,
        distortions=Distortions() if args.fine_tune else distortions,
        train=TrainConfig(
            steps=args.how_many_training_steps, learning_rate=args.learning_rate,
            batch_size=args.train_batch_size, optimizer=args.optimizer,
            l2_regularization=args.l2_regularization, pos_weight=args.pos_weight,
            eval_interval=args.eval_step_interval,
            validation_batch_size=args.validation_batch_size, seed=args.random_seed,
            final_tensor_name=args.final_tensor_name),
        outputs=Outputs(
            output_graph=args.output_graph, output_labels=args.output_labels,
            output_thresholds=args.output_thresholds, metrics_file=args.metrics_file,
            test_predictions=args.test_predictions,
            intermediate_output_graphs_dir=args.intermediate_output_graphs_dir,
            intermediate_store_frequency=args.intermediate_store_frequency,
            summaries_dir=args.summaries_dir, saved_model_dir=args.saved_model_dir,
            tflite_output_file=args.tflite_output_file, report_page=args.report_page,
            report_wrong_images=args.report_wrong_images),
        changed_flags=_changed_flags(args),
        fine_tune=_fine_tune_config(args, distortions))


def _changed_flags(args):
    """(flag, value) pairs of the flags whose values differ from the defaults."""
    defaults = vars(parse_args([]))  # every flag has a default, so no argument is needed
    return tuple((name, value) for name, value in vars(args).items() if value != defaults[name])


def _fine_tune_config(args, distortions):
    """Phase 2's configuration, or None; with --fine_tune the distortions are its own."""
    if not args.fine_tune:
        return None
    from multilabel.training import fine_tuning

    return fine_tuning.FineTuneConfig(
        layers=args.fine_tune_layers, epochs=args.fine_tune_epochs,
        learning_rate=args.fine_tune_learning_rate,
        distortions=distortions if distortions.enabled else fine_tuning.DEFAULT_DISTORTIONS,
        checkpoint_dir=os.path.join(os.path.dirname(args.checkpoint_path) or ".", "fine_tune"),
        resume=args.resume)


def main(argv=None):
    args = parse_args(argv)
    level = "CRITICAL" if args.logging_verbosity == "FATAL" else args.logging_verbosity
    logging.basicConfig(level=logging.getLevelName(level),
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    # TensorFlow's own deprecation notices about the v1 API we use on purpose, and its
    # notes (through absl) on renaming a saved module set's inputs.
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        # TensorFlow loads only once the flags are fine, without its C++ start-up lines.
        start_tensorflow()
        from multilabel import retraining

        retraining.run(_config(args, retraining))
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
