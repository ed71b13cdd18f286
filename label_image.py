"""Label images with the graph retrain.py exported.

    python label_image.py DATASET/images/1.jpg
    python label_image.py DATASET/images --output_format=json > labels.jsonl
    python label_image.py --image_list=DATASET/dataset_test.lst --output_format=csv
    python label_image.py --image_list=photos.txt --output_format=csv > predicted.csv

For each image it prints one line per label sorted by probability, and the predicted
label set (per-class thresholds saved at training, or
`--threshold`; where every training image had a label, an image under every threshold
gets the label closest to its threshold, unless `--allow_empty`); the CSV's last column,
`predicted`, holds that set as names joined by a tab, which no class name holds, so that
data_generation.py reads the file back (`--labels predicted.csv`) into the same classes.
A folder stands for the image files in it and in its subfolders (`--top_level_only`:
in it only). The model is loaded once and images go through it in batches. An image that cannot
be read is reported on stderr and the others are still labelled.

The model is a run folder (--model_dir, default MODEL_DETAILS/ in the project folder)
or a graph and the files beside it (--graph). Where the run left its TFLite model, it
is run by LiteRT without loading TensorFlow (a fraction of a second instead of
seconds); `--engine tf` runs the frozen graph instead. From Python:
multilabel.Classifier (docs/python_api.md).

Exit status: 0 every image labelled; 1 some images failed, the rest were labelled, or
a full disk; 2 bad usage, a bad graph, labels or thresholds file, or no image could be
labelled; 130 interrupted (Ctrl-C).
"""

import argparse
import logging
import math
import os
import sys
import time

from multilabel.base import environment

# Before any import of a package: from a Python without them, one line says which to use.
environment.require("label_image.py")

import numpy as np

from multilabel.base.arguments import names, positive_int
from multilabel.base.command import run_command
from multilabel.base.deadline import exit_now
from multilabel.base.errors import (EXIT_BAD_INPUT, EXIT_OK, EXIT_SOME_FAILED, UserError,
                                    is_no_space)
from multilabel.base.project import DETAILS, default_path
from multilabel.data.image_sources import images_in_folder, images_in_list
from multilabel.evaluation.thresholds import DEFAULT_THRESHOLD, apply_thresholds
from multilabel.labelling import run_folder
from multilabel.labelling.classifier import ENGINES, Classifier, LoadOptions
from multilabel.labelling.label_report import FORMATS, Report
from multilabel.base.host import cores
from multilabel.base.options import QUANTIZED

# TensorFlow's C++ start-up chatter would bury the one line an error prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

logger = logging.getLogger("label_image")

LABELS_NAME = run_folder.LABELS
THRESHOLDS_NAME = run_folder.THRESHOLDS
NO_IMAGE = ("no image given: name image files or folders (label_image.py photo.jpg "
            "photos/), or give --image_list FILE")


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


def _probability(text):
    value = _finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Label images with a frozen multi-label graph (from retrain.py).",
        epilog="Exit status: 0 all images labelled, 1 some failed or a full disk, 2 bad "
               "usage or input, 130 interrupted.")
    source = parser.add_argument_group("images (all given are labelled, in this order)")
    source.add_argument("--image", action="append", default=[],
                        help="an image file, or a folder whose image files (its subfolders' "
                             "too) are labelled; repeat for several")
    source.add_argument("paths", nargs="*", metavar="IMAGE_OR_FOLDER",
                        help="image files, or folders whose image files (its subfolders' "
                             "too) are labelled")
    source.add_argument("--image_dir", help="a folder: label its image files and its "
                                            "subfolders', in natural path order")
    source.add_argument("--top_level_only", action="store_true",
                        help="a folder stands for the image files directly in it, not for "
                             "those in its subfolders")
    source.add_argument("--image_list",
                        help="a text file of image paths, one a line, or a .lst list file "
                             "(index, flags, path per line); relative paths are relative to "
                             "the list file's folder")
    model = parser.add_argument_group("model")
    model.add_argument("--model_dir",
                       help="a run folder (retrain.py --output_dir): its graph or TFLite "
                            f"model, labels and thresholds (default: {DETAILS} in the "
                            "project folder, unless --graph is given)")
    model.add_argument("--graph",
                       help="frozen GraphDef to load; the labels, thresholds and TFLite "
                            "model are looked for beside it (default: the run folder's)")
    model.add_argument("--engine", choices=ENGINES, default="auto",
                       help="what runs the model: tflite (LiteRT, no TensorFlow: the run's "
                            "TFLite model), tf (the frozen graph in TensorFlow), or auto: "
                            "tflite where the run left its TFLite model and none of the "
                            "graph-only flags --input_layer, --output_layer, --input_height, "
                            "--input_width, --allow_ops is given, else tf "
                            "(default: %(default)s)")
    model.add_argument("--variant", choices=QUANTIZED,
                       help="run the run's quantized TFLite copy of this name (retrain.py "
                            "--quantize) with its own thresholds, instead of the float32 "
                            "model (default: float32)")
    model.add_argument("--labels",
                       help=f"class names, one a line in output order (default: {LABELS_NAME} "
                            "of the run)")
    model.add_argument("--thresholds",
                       help=f"per-class thresholds, one a line (default: {THRESHOLDS_NAME} "
                            f"of the run; {DEFAULT_THRESHOLD} for all when that is missing)")
    model.add_argument("--threshold", type=_probability,
                       help="one threshold for every class, instead of --thresholds")
    model.add_argument("--allow_empty", action="store_true",
                       help="predict an empty label set where no class reaches its threshold, "
                            "even where the run recorded that every training image had a "
                            "label (by default such an image gets the one label closest to "
                            "its threshold)")
    model.add_argument("--input_layer", default="Placeholder",
                       help="the graph's input operation or tensor name (default: %(default)s)")
    model.add_argument("--output_layer", default="final_result",
                       help="the graph's output operation or tensor name "
                            "(default: %(default)s)")
    model.add_argument("--allow_ops", type=names, default=(), metavar="OP[,OP...]",
                       help="run the graph even though it holds these operations, which an "
                            "image classifier does not need and which may read or write files "
                            "or run code; only for a graph you trust (default: refuse them)")
    model.add_argument("--max_input_size", type=positive_int, default=4096,
                       help="refuse a graph whose input is larger than this a side, which "
                            "would take that much memory per image (default: %(default)s)")
    model.add_argument("--timeout", type=_positive_float, default=300.0,
                       help="seconds one run of the model on a batch may take before it is "
                            "stopped as stuck, on either engine (the frozen graph's watchdog "
                            "waits 1.5 times this plus 5 s; docs/faults.md) "
                            "(default: %(default)s)")
    model.add_argument("--input_height", type=positive_int,
                       help="image height (default: from the graph's input shape)")
    model.add_argument("--input_width", type=positive_int,
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
                             "labels joined by a tab; data_generation.py --labels reads the "
                             "file back) (default: %(default)s)")
    output.add_argument("--top_k", type=positive_int,
                        help="text: show only the K most probable labels (default: all)")
    output.add_argument("--batch_size", type=positive_int, default=32,
                        help="images per run of the graph (default: %(default)s)")
    output.add_argument("--rank", choices=("uncertain",),
                        help="write the images in the order to label them next: uncertain, "
                             "the smallest distance (in log-odds) to a class threshold first; "
                             "near-duplicates of an image above or of a --labelled image go "
                             "last (docs/data.md#what-to-label-next)")
    output.add_argument("--labelled", metavar="LIST",
                        help="with --rank: a list (.lst or one path a line) of the images "
                             "already labelled, e.g. the training list")
    output.add_argument("--review_page", metavar="HTML",
                        help="with --rank: also write the ranked images as a review page, to "
                             "label in the browser and save as a CSV label file to add")
    output.add_argument("--bottleneck_dir",
                        help="with --rank: the cache of feature vectors (default: "
                             "MODEL_DETAILS/bottlenecks in the project folder, as retrain.py's)")
    output.add_argument("-q", "--quiet", action="store_true", help="log only warnings")
    args = parser.parse_args(argv)
    if not (args.image or args.paths or args.image_dir or args.image_list):
        parser.error(NO_IMAGE)
    if args.model_dir is None and args.graph is None:
        args.model_dir = default_path(DETAILS)
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    # A model stopped by --timeout or Ctrl-C may still run in native code: end without it.
    return exit_now(run_command("label_image.py", label_to_stdout, args))


def label_to_stdout(args):
    """`label(args)`, stopping quietly when the reader of stdout stops early."""
    try:
        return label(args)
    except BrokenPipeError:
        # The reader stopped early (`label_image.py photos | head`): stop quietly. Point
        # stdout at /dev/null so that Python's own flush at exit does not fail again.
        _drop_stdout()
        return EXIT_SOME_FAILED
    except OSError as e:
        if is_no_space(e):
            # stdout on a full disk: the boundary prints one line; Python's flush at exit
            # must not fail again on what is still buffered (that was a traceback).
            _drop_stdout()
        raise


def _drop_stdout():
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def label(args):
    """Label every image the flags name; return the exit status."""
    paths = image_paths(args)
    # The model folder's files; a graph's TFLite model beside it runs without TensorFlow.
    files = run_folder.model_files(model_dir=args.model_dir, graph=args.graph,
                                   labels=args.labels, thresholds=args.thresholds,
                                   variant=args.variant)
    classifier = Classifier.open(files, LoadOptions(
        engine=args.engine, variant=args.variant, labels=args.labels, thresholds=args.thresholds,
        threshold=args.threshold, allow_empty=args.allow_empty,
        # One interpreter per core for a folder; one photo needs one (each costs its start).
        interpreters=min(cores(), len(paths)), input_layer=args.input_layer,
        output_layer=args.output_layer, input_height=args.input_height,
        input_width=args.input_width, allow_ops=args.allow_ops,
        max_input_size=args.max_input_size, timeout=args.timeout, input_mean=args.input_mean,
        input_std=args.input_std))
    labels = classifier.class_names
    report = Report(args.output_format, labels, classifier.thresholds, top_k=args.top_k,
                    name_images=len(paths) > 1, never_empty=classifier.never_empty)
    out = sys.stdout
    if hasattr(out, "reconfigure"):
        # A file name that is not UTF-8 is written as its bytes (CSV names it unescaped,
        # for scripts to open), not refused by a UTF-8 locale's strict encoding.
        out.reconfigure(errors="surrogateescape")
    out.write(report.header())
    labelled = failed = 0
    start = time.monotonic()
    results = classifier.results(paths, args.batch_size)
    if args.rank:
        results = _ranked(args, files, classifier, list(results))
    for result in results:
        if not result.ok:
            print(result.error, file=sys.stderr)
            failed += 1
            continue
        if len(result.probabilities) != len(labels):
            raise UserError(f"{len(labels)} class names, but the graph {classifier.model.path} "
                            f"gives {len(result.probabilities)} probabilities per image",
                            args.labels or files.labels)
        out.write(report.record(result.image, result.probabilities))
        labelled += 1
    out.flush()
    logger.info("Labelled %d of %d images in %.1f s (%s)", labelled, len(paths),
                time.monotonic() - start, classifier.engine)
    if not failed:
        return EXIT_OK
    return EXIT_SOME_FAILED if labelled else EXIT_BAD_INPUT


def _ranked(args, files, classifier, results):
    """`results` in --rank's order, the failed ones first (they are reported, not ranked)."""
    from multilabel.labelling import next_photos  # loads the feature module: only here

    ok = [r for r in results if r.ok]
    probs = [r.probabilities for r in ok]
    order, repeats = next_photos.ranked(
        files.folder, [r.image for r in ok], probs, classifier.thresholds,
        images_in_list(args.labelled) if args.labelled else (), args.bottleneck_dir)
    logger.info("Ranked %d images by --rank %s; %d near-duplicates of another or of a "
                "labelled image put last", len(ok), args.rank, int(repeats.sum()))
    if args.review_page:
        _write_review_page(args.review_page, classifier, [ok[i] for i in order])
    return [r for r in results if not r.ok] + [ok[i] for i in order]


def _write_review_page(path, classifier, ranked):
    """The review page of the `ranked` results: the model's labels suggested for each."""
    from multilabel.labelling.ranking import margins
    from multilabel.report import review_page

    probs = np.array([r.probabilities for r in ranked])
    suggested = apply_thresholds(probs, classifier.thresholds, classifier.never_empty)
    label_file, cards = review_page.unlabelled_cards(
        [r.image for r in ranked], suggested, probs,
        [f"rank {k + 1}, margin {m:.2f}"
         for k, m in enumerate(margins(probs, classifier.thresholds))])
    review_page.write_review_page(path, classifier.class_names, label_file, cards,
                                  unlabelled=True)
    logger.info("Wrote %s: %d images to label", path, len(cards))


def image_paths(args):
    """Every image named: --image, positional paths, --image_dir, --image_list, in that
    order. A folder given as --image or as a positional path stands for its image files,
    its subfolders' too unless --top_level_only."""
    paths = []
    for path in args.image + args.paths:
        paths.extend(images_in_folder(path, args.top_level_only) if os.path.isdir(path)
                     else [path])
    if args.image_dir:
        paths.extend(images_in_folder(args.image_dir, args.top_level_only))
    if args.image_list:
        paths.extend(images_in_list(args.image_list))
    return paths


if __name__ == "__main__":
    sys.exit(main())
