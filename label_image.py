"""Label images with the graph retrain.py exported.

    python label_image.py --image=test.jpeg
    python label_image.py DATASET/images --output_format=json > labels.jsonl
    python label_image.py --image_list=DATASET/dataset_test.lst --output_format=csv
    python label_image.py --image_list=photos.txt --output_format=csv > predicted.csv

For each image it prints the 1 x N probability vector, one line per label sorted by
probability, and the predicted label set (per-class thresholds saved at training, or
`--threshold`); the CSV's last column, `predicted`, holds that set as names joined by a
space, as a Kaggle-style image,tags file does. The graph is loaded once and images go through it in batches. An image
that cannot be read is reported on stderr and the others are still labelled.

Exit status: 0 every image labelled; 1 some images failed, the rest were labelled;
2 bad usage, a bad graph, labels or thresholds file, or no image could be labelled;
130 interrupted (Ctrl-C).
"""

import argparse
import logging
import math
import os
import sys
import time

import numpy as np

from multilabel.base.errors import (EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED,
                               UserError)
from multilabel.data.image_sources import images_in_folder, images_in_list
from multilabel.labelling.label_report import FORMATS, Report
from multilabel.data.listfile import read_class_names
from multilabel.base.quiet_start import start_tensorflow
from multilabel.evaluation.thresholds import DEFAULT_THRESHOLD, read_thresholds

# TensorFlow's C++ start-up chatter would bury the one line an error prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

logger = logging.getLogger("label_image")

DEFAULT_GRAPH = os.path.join("MODEL_DETAILS", "output_graph.pb")
LABELS_NAME = "output_labels.txt"
THRESHOLDS_NAME = "output_thresholds.txt"
DEFAULT_IMAGE = "test.jpeg"


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _positive_float(text):
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _nonzero_float(text):
    value = _finite_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must not be 0")
    return value


def _op_names(text):
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"not a comma-separated list of op names: {text!r}")
    return names


def _probability(text):
    value = _finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Label images with a frozen multi-label graph (from retrain.py).",
        epilog="Exit status: 0 all images labelled, 1 some failed, 2 bad usage or input, "
               "130 interrupted.")
    source = parser.add_argument_group("images (all given are labelled, in this order)")
    source.add_argument("--image", action="append", default=[],
                        help="an image file, or a folder whose image files are labelled; "
                             f"repeat for several (default: {DEFAULT_IMAGE} when no image "
                             "is given any way)")
    source.add_argument("paths", nargs="*", metavar="IMAGE_OR_FOLDER",
                        help="image files, or folders whose image files are labelled")
    source.add_argument("--image_dir", help="a folder: label its image files, sorted by name")
    source.add_argument("--image_list",
                        help="a text file of image paths, one a line, or a .lst list file "
                             "(index, flags, path per line); relative paths are relative to "
                             "the list file's folder")
    model = parser.add_argument_group("model")
    model.add_argument("--graph", default=DEFAULT_GRAPH,
                       help="frozen GraphDef to load (default: %(default)s)")
    model.add_argument("--labels",
                       help=f"class names, one a line in output order (default: {LABELS_NAME} "
                            "next to --graph)")
    model.add_argument("--thresholds",
                       help=f"per-class thresholds, one a line (default: {THRESHOLDS_NAME} "
                            f"next to --graph; {DEFAULT_THRESHOLD} for all when that is missing)")
    model.add_argument("--threshold", type=_probability,
                       help="one threshold for every class, instead of --thresholds")
    model.add_argument("--input_layer", default="Placeholder",
                       help="input operation or tensor name (default: %(default)s)")
    model.add_argument("--output_layer", default="final_result",
                       help="output operation or tensor name (default: %(default)s)")
    model.add_argument("--allow_ops", type=_op_names, default=(), metavar="OP[,OP...]",
                       help="run the graph even though it holds these operations, which an "
                            "image classifier does not need and which may read or write files "
                            "or run code; only for a graph you trust (default: refuse them)")
    model.add_argument("--max_input_size", type=_positive_int, default=4096,
                       help="refuse a graph whose input is larger than this a side, which "
                            "would take that much memory per image (default: %(default)s)")
    model.add_argument("--timeout", type=_positive_float, default=300.0,
                       help="seconds one run of the graph on a batch may take before it is "
                            "stopped as stuck (default: %(default)s)")
    model.add_argument("--input_height", type=_positive_int,
                       help="image height (default: from the graph's input shape)")
    model.add_argument("--input_width", type=_positive_int,
                       help="image width (default: from the graph's input shape)")
    model.add_argument("--input_mean", type=_finite_float, default=0.0,
                       help="subtracted from pixels AFTER they are scaled to [0, 1], as "
                            "(x - mean) / std; the defaults keep retrain.py's [0, 1] input "
                            "(default: %(default)s)")
    model.add_argument("--input_std", type=_nonzero_float, default=1.0,
                       help="divides pixels after --input_mean (default: %(default)s)")
    output = parser.add_argument_group("output")
    output.add_argument("--output_format", choices=FORMATS, default="text",
                        help="text for people; json (one object a line) or csv for scripts: "
                             "image, one probability per label, predicted (the predicted "
                             "labels joined by a space) (default: %(default)s)")
    output.add_argument("--top_k", type=_positive_int,
                        help="text: show only the K most probable labels (default: all)")
    output.add_argument("--batch_size", type=_positive_int, default=32,
                        help="images per run of the graph (default: %(default)s)")
    output.add_argument("-q", "--quiet", action="store_true", help="log only warnings")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return label(args)
    except UserError as e:
        print(e, file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # The reader stopped early (`label_image.py photos | head`): stop quietly. Point
        # stdout at /dev/null so that Python's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_SOME_FAILED
    except KeyboardInterrupt:
        print("label_image.py: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def label(args):
    """Label every image the flags name; return the exit status."""
    paths = image_paths(args)
    # Started here so that --help and flag errors answer without TensorFlow's start-up.
    start_tensorflow()
    from multilabel.labelling.frozen_graph import load_frozen_graph
    from multilabel.labelling.labeller import label_images

    # The graph first: the labels and thresholds are looked for next to it.
    model = load_frozen_graph(args.graph, args.input_layer, args.output_layer,
                              args.input_height, args.input_width, args.allow_ops,
                              args.max_input_size)
    graph_folder = os.path.dirname(args.graph)
    labels_path = args.labels or os.path.join(graph_folder, LABELS_NAME)
    labels = tuple(read_class_names(labels_path))
    if model.num_classes is not None:
        _check_width(model.num_classes, labels, labels_path, model)
    report = Report(args.output_format, labels, thresholds(args, graph_folder, len(labels)),
                    top_k=args.top_k, name_images=len(paths) > 1)
    out = sys.stdout
    out.write(report.header())
    labelled = failed = 0
    start = time.monotonic()
    for result in label_images(model, paths, args.batch_size, args.input_mean, args.input_std,
                               timeout=args.timeout):
        if not result.ok:
            print(result.error, file=sys.stderr)
            failed += 1
            continue
        _check_width(len(result.probabilities), labels, labels_path, model)
        out.write(report.record(result.image, result.probabilities))
        labelled += 1
    out.flush()
    logger.info("Labelled %d of %d images in %.1f s", labelled, len(paths),
                time.monotonic() - start)
    if not failed:
        return EXIT_OK
    return EXIT_SOME_FAILED if labelled else EXIT_BAD_INPUT


def image_paths(args):
    """Every image named: --image, positional paths, --image_dir, --image_list, in that
    order; test.jpeg when none is named. A folder given as --image or as a positional
    path stands for its image files."""
    paths = []
    for path in args.image + args.paths:
        paths.extend(images_in_folder(path) if os.path.isdir(path) else [path])
    if args.image_dir:
        paths.extend(images_in_folder(args.image_dir))
    if args.image_list:
        paths.extend(images_in_list(args.image_list))
    return paths or [DEFAULT_IMAGE]


def thresholds(args, graph_folder, num_classes):
    """Per-class thresholds: --threshold, else the file, else 0.5 if the default is missing."""
    if args.threshold is not None:
        return np.full(num_classes, args.threshold)
    path = args.thresholds or os.path.join(graph_folder, THRESHOLDS_NAME)
    if args.thresholds is None and not os.path.exists(path):
        # A graph from elsewhere may come without thresholds; an explicit file must exist.
        logger.warning("%s not found: using threshold %s for every class", path,
                       DEFAULT_THRESHOLD)
        return np.full(num_classes, DEFAULT_THRESHOLD)
    return read_thresholds(path, num_classes)


def _check_width(num_classes, labels, labels_path, model):
    if num_classes != len(labels):
        raise UserError(f"{len(labels)} class names, but the graph {model.path} gives "
                        f"{num_classes} probabilities per image", labels_path)


if __name__ == "__main__":
    sys.exit(main())
