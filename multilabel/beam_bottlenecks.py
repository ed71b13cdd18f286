"""Fill retrain.py's bottleneck cache with Apache Beam, on a laptop or a cluster.

    python -m multilabel.beam_bottlenecks --image_dir ./DATASET/ \\
        --runner DirectRunner --direct_num_workers 2 --direct_running_mode multi_processing

Takes retrain.py's data and module flags and hands every other flag to Beam (the
runner and its options). Every image of the dataset's lists whose bottleneck is not
cached yet is computed with retrain.py's preprocessing and module, and written as
sharded record files into `<bottleneck_dir>/<module key>/shards/`, where a following
`retrain.py --bottleneck_dir` with the same folder finds them: it computes none.

Exit status: 0 every image done; 1 some images could not be read (reported, counted,
the rest done), or a full disk; 2 bad usage or input; 130 interrupted.
"""

import argparse
import datetime
import logging
import os
import secrets
import sys
import time

from multilabel.base import environment

# Before any import of a package: from a Python without them, one line says which to use.
environment.require("python -m multilabel.beam_bottlenecks", environment.BEAM)

from multilabel.base import options
from multilabel.base.arguments import positive_int
from multilabel.base.errors import EXIT_OK, EXIT_SOME_FAILED
from multilabel.beam import command
from multilabel.beam.command import with_option_defaults

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # inherited by local worker processes

logger = logging.getLogger("beam_bottlenecks")
# retrain.py's flags this command takes, declared once in base/options.py: each module's
# cache is filled (the same module twice is refused); the cache may be a gs:// or other URL.
FLAGS = ("image_dir", "tfhub_module", "model_dir", "bottleneck_dir", "bottleneck_batch_size",
         "bottleneck_engine")

def parse_args(argv):
    """(this command's flags, the flags left for Beam)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Each module's cache is filled; --bottleneck_dir may be a gs:// or other URL. "
               "Any other flag goes to Beam's PipelineOptions: --runner, "
               "--direct_num_workers, --direct_running_mode, a cloud runner's options.")
    options.add_flags(p, FLAGS)
    p.add_argument("--inference_threads", type=positive_int,
                   help="threads per worker process for the module (default: the cores, "
                        "shared among local worker processes; 1 on a cluster runner)")
    args, beam_argv = p.parse_known_args(argv)
    return with_option_defaults(p, args, FLAGS), beam_argv


def main(argv=None):
    return command.main("beam_bottlenecks", parse_args, run, argv,
                        interrupted="finished shards are kept")


def run(args, beam_argv):
    """Check the data and the modules here, then run the pipeline; return the exit status."""
    import apache_beam as beam

    from multilabel.base import storage
    from multilabel.beam import transforms
    from multilabel.beam.pipelines import add_bottlenecks
    from multilabel.data import dataset
    from multilabel.features import bottleneck_shards

    data = dataset.load_dataset(args.image_dir)
    paths = sorted({transforms.for_workers(p)
                    for part in (data.train, data.validation, data.test) for p in part.paths})
    members = _members(args)
    bottleneck_dir = transforms.for_workers(args.bottleneck_dir)
    options = transforms.pipeline_options(beam_argv)
    threads = args.inference_threads or transforms.inference_threads(options)
    run_name = (datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
                + f"-{secrets.token_hex(4)}")
    for m in members:
        logger.info("%d images; module %s (%s engine, %d threads a worker); new shards in %s",
                    len(paths), m.path, m.engine, threads,
                    storage.join(bottleneck_shards.shards_folder(
                        storage.join(bottleneck_dir, m.key)), run_name + "-*"))
    start = time.monotonic()
    pipeline = beam.Pipeline(options=options)
    add_bottlenecks(pipeline, paths, members, bottleneck_dir, run_name,
                    args.bottleneck_batch_size, threads)
    result = pipeline.run()
    result.wait_until_finish()
    seconds = time.monotonic() - start
    failed = _report(result, paths, members, bottleneck_dir, run_name)
    transforms.log_workers(logger, result)
    logger.info("Job done in %.1f s", seconds)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _members(args):
    """The modules as retrain.py opens them (module_set.load_module_set), for the workers.

    The engine of each module is chosen here, once, as retrain.py chooses it; a TFLite
    conversion is kept in the module's cache folder, where every worker reads it.
    """
    from multilabel.beam.pipelines import WorkerMember
    from multilabel.beam.transforms import for_workers
    from multilabel.features import module_set

    opened = module_set.load_module_set(args.tfhub_module, args.model_dir, args.bottleneck_dir,
                                        args.bottleneck_engine)
    return [WorkerMember(m.handle, for_workers(m.path), opened.height, opened.width, m.height,
                         m.width, m.key, m.dim, m.engine.name, m.engine_key)
            for m in opened.members]


def _report(result, paths, members, bottleneck_dir, run_name):
    """Log what was done for each module; return the number of images that failed.

    From the runner's counters where it has them; otherwise from the shards this run
    wrote, which is all that can be known then (failures are only in the workers' logs).
    """
    from multilabel.base import storage
    from multilabel.beam import transforms
    from multilabel.beam.pipelines import member_namespace
    from multilabel.features import bottleneck_shards

    names = ("computed", "in_shards", "cached_files", "identical")
    total = transforms.counters(result, ("failed_images",))
    for m in members:
        counts = transforms.counters(result, names, member_namespace(m))
        prefix = "" if len(members) == 1 else f"Module {m.handle}: "
        if counts is None:
            written = bottleneck_shards.count_records(
                storage.join(bottleneck_dir, m.key), run_name)
            logger.info("%s%d images: computed %d bottlenecks (counted in the new shards; the "
                        "runner gives no counters)", prefix, len(paths), written)
            continue
        logger.info("%s%d images: computed %d bottlenecks; %d were in shards, %d cached as "
                    "files, %d identical to another image", prefix, len(paths),
                    *counts.values())
    failed = total["failed_images"] if total else 0
    logger.info("%d images failed", failed)
    return failed


if __name__ == "__main__":
    sys.exit(main())
