"""Label many images with retrain.py's exported graph on Apache Beam.

    python -m multilabel.beam_label --image_dir photos/ --output labels/part \\
        --runner DirectRunner --direct_num_workers 2 --direct_running_mode multi_processing

Takes label_image.py's model flags (--graph, --labels, --thresholds) and image flags
(--image_dir, --image_list), writes one JSON record per image, as label_image.py
--output_format json prints it, into the files `PREFIX-SSSSS-of-NNNNN` that Beam
shards, and hands every other flag to Beam. An image that cannot be read goes to
`errors-PREFIX-...` beside them (--errors) with its reason, is counted, and never
stops the job.

Exit status: 0 every image labelled; 1 some images failed, the rest were labelled, or
a full disk; 2 bad usage or input, or no image could be labelled; 130 interrupted.
"""

import argparse
import logging
import os
import sys
import time

from multilabel.base import environment

# Before any import of a package: from a Python without them, one line says which to use.
environment.require("python -m multilabel.beam_label", environment.BEAM)

from multilabel.base.arguments import names, positive_float, positive_int
from multilabel.base.deadline import exit_now, stuck_error
from multilabel.base.errors import (EXIT_BAD_INPUT, EXIT_OK, EXIT_SOME_FAILED, NoSpaceError,
                                    device_of, is_no_space)
from multilabel.base.project import DETAILS, default_path
from multilabel.beam import command
from multilabel.evaluation.thresholds import DEFAULT_THRESHOLD
from multilabel.labelling.run_folder import (GRAPH, LABELS as LABELS_NAME,
                                             THRESHOLDS as THRESHOLDS_NAME)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # inherited by local worker processes

logger = logging.getLogger("beam_label")


def parse_args(argv):
    """(this command's flags, the flags left for Beam)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Any other flag goes to Beam's PipelineOptions: --runner, "
               "--direct_num_workers, --direct_running_mode, a cloud runner's options.")
    p.add_argument("--graph", default=os.path.join(default_path(DETAILS), GRAPH),
                   help=f"frozen graph from retrain.py (default: {DETAILS}/output_graph.pb "
                        "in the project folder)")
    p.add_argument("--labels", help=f"class names (default: {LABELS_NAME} next to --graph)")
    p.add_argument("--thresholds",
                   help=f"per-class thresholds (default: {THRESHOLDS_NAME} next to --graph; "
                        f"{DEFAULT_THRESHOLD} for all when that is missing)")
    p.add_argument("--allow_ops", type=names, default=(), metavar="OP[,OP...]",
                   help="run the graph even though it holds these operations, which an image "
                        "classifier does not need and which may read or write files or run "
                        "code; only for a graph you trust (default: refuse them)")
    p.add_argument("--timeout", type=positive_float, default=300.0,
                   help="seconds one run of the graph on a batch may take before the job is "
                        "stopped as stuck, as label_image.py --timeout (default: %(default)s)")
    p.add_argument("--image_dir", help="a folder (local, or gs:// and the like): its image files")
    p.add_argument("--image_list", help="a .lst list file or a text file of image paths, one "
                                        "a line; relative paths are relative to its folder")
    p.add_argument("--output", required=True, metavar="PREFIX",
                   help="where the JSON records go: files PREFIX-00000-of-0000N")
    p.add_argument("--errors", metavar="PREFIX",
                   help="where the images that failed go, one JSON object each "
                        "(default: errors-PREFIX next to the records)")
    p.add_argument("--batch_size", type=positive_int, default=32,
                   help="images per run of the graph (default: %(default)s)")
    p.add_argument("--inference_threads", type=positive_int,
                   help="threads per worker process for the graph (default: the cores, "
                        "shared among local worker processes; 1 on a cluster runner)")
    args, beam_argv = p.parse_known_args(argv)
    if not (args.image_dir or args.image_list):
        p.error("give --image_dir or --image_list (or both)")
    return args, beam_argv


def main(argv=None):
    # A graph stopped by --timeout or Ctrl-C may still run in native code: end without it.
    return exit_now(command.main("beam_label", parse_args, run, argv))


def run(args, beam_argv):
    """Check the model files and list the images here, then label; return the exit status."""
    import apache_beam as beam

    from multilabel.beam import transforms
    from multilabel.beam.pipelines import WorkerClassifier, add_labels
    from multilabel.data.image_sources import images_in_list
    from multilabel.labelling.classifier import Classifier, LoadOptions
    from multilabel.labelling.run_folder import model_files

    # Loaded here as label_image.py loads a graph (one run's files, the graph's ops and
    # layers, its class names, thresholds and rule): a bad model fails here, not in
    # every worker.
    classifier = Classifier.open(
        model_files(graph=args.graph, labels=args.labels, thresholds=args.thresholds),
        LoadOptions(engine="tf", labels=args.labels, thresholds=args.thresholds,
                    allow_ops=args.allow_ops))
    model = classifier.model

    paths = []
    if args.image_dir:
        paths += transforms.images_in_folder(args.image_dir)
    if args.image_list:
        paths += images_in_list(args.image_list)
    errors = args.errors or os.path.join(os.path.dirname(args.output),
                                         "errors-" + os.path.basename(args.output))
    options = transforms.pipeline_options(beam_argv)
    threads = args.inference_threads or transforms.inference_threads(options)
    logger.info("Labelling %d images into %s-*, failures into %s-* (%d threads a worker)",
                len(paths), args.output, errors, threads)
    start, started = time.monotonic(), time.time() - 1
    pipeline = beam.Pipeline(options=options)
    add_labels(pipeline, paths,
               WorkerClassifier(transforms.for_workers(args.graph), args.allow_ops,
                                classifier.class_names, classifier.thresholds,
                                classifier.never_empty, args.timeout),
               transforms.for_workers(args.output), transforms.for_workers(errors),
               model.height, model.width,
               model.batch_size or args.batch_size, threads)
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except Exception as e:
        # A worker's --timeout reaches here wrapped by Beam: one line, as label_image.py's.
        stuck = stuck_error(e)
        if stuck is not None:
            raise stuck from e
        if not _no_space(e):
            raise
        # Beam leaves its half-written shards behind on a failed write: removed here.
        for prefix in (args.output, errors):
            _remove_beam_temp(prefix, started)
        raise NoSpaceError(f"no space left on {device_of(args.output)} while writing "
                           f"{args.output}-*") from e
    seconds = time.monotonic() - start
    counts = transforms.counters(result, ("labelled", "failed"))
    if counts is None:  # the runner gives no counters: count the records written
        counts = {"labelled": _records(args.output, started),
                  "failed": _records(errors, started)}
    labelled, failed = counts["labelled"], counts["failed"]
    logger.info("Labelled %d of %d images; %d failed%s", labelled, len(paths), failed,
                f" (see {errors}-*)" if failed else "")
    transforms.log_workers(logger, result)
    logger.info("Job done in %.1f s", seconds)
    if not failed:
        return EXIT_OK
    return EXIT_SOME_FAILED if labelled else EXIT_BAD_INPUT


def _no_space(error):
    """Whether a full disk is in `error`'s chain (Beam wraps a worker's OSError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if is_no_space(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _remove_beam_temp(prefix, since):
    """Remove the `beam-temp-NAME-*` folders Beam made for `prefix` (local) since `since`
    (epoch s): this job's, never another running job's older ones."""
    import glob
    import shutil

    if "://" in prefix:
        return
    folder, name = os.path.split(os.path.abspath(prefix))
    for temp in glob.glob(os.path.join(glob.escape(folder), f"beam-temp-{glob.escape(name)}-*")):
        if os.path.isdir(temp) and os.path.getmtime(temp) >= since:
            shutil.rmtree(temp, ignore_errors=True)


def _records(prefix, since):
    """The lines of the files `PREFIX-SSSSS-of-NNNNN` written since `since` (epoch s)."""
    from apache_beam.io.filesystems import FileSystems

    found = FileSystems.match([prefix + "-*-of-*"])[0].metadata_list
    total = 0
    for m in found:
        if m.last_updated_in_seconds >= since:
            with FileSystems.open(m.path) as f:
                total += sum(1 for _ in f)
    return total


if __name__ == "__main__":
    sys.exit(main())
