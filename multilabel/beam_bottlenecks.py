"""Fill retrain.py's bottleneck cache with Apache Beam, on a laptop or a cluster.

    python -m multilabel.beam_bottlenecks --image_dir ./DATASET/ \\
        --runner DirectRunner --direct_num_workers 2 --direct_running_mode multi_processing

Takes retrain.py's data and module flags and hands every other flag to Beam (the
runner and its options). Every image of the dataset's lists whose bottleneck is not
cached yet is computed with retrain.py's preprocessing and module, and written as
sharded record files into `<bottleneck_dir>/<module key>/shards/`, where a following
`retrain.py --bottleneck_dir` with the same folder finds them: it computes none.

Exit status: 0 every image done; 1 some images could not be read (reported, counted,
the rest done); 2 bad usage or input; 130 interrupted.
"""

import argparse
import collections
import datetime
import logging
import os
import secrets
import sys

from multilabel.beam import command
from multilabel.base.errors import EXIT_OK, EXIT_SOME_FAILED

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # inherited by local worker processes

logger = logging.getLogger("beam_bottlenecks")

_Module = collections.namedtuple("_Module", "path height width key dim engine")


def parse_args(argv):
    """(this command's flags, the flags left for Beam)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Any other flag goes to Beam's PipelineOptions: --runner, "
               "--direct_num_workers, --direct_running_mode, a cloud runner's options.")
    p.add_argument("--image_dir", default="./DATASET/",
                   help="dataset folder with the lists retrain.py reads (default: %(default)s)")
    p.add_argument("--tfhub_module", default="mobilenet_v2_100_224",
                   help="feature-vector module, as retrain.py takes it (default: %(default)s)")
    p.add_argument("--model_dir", default="MODEL",
                   help="where named modules are built and kept (default: %(default)s)")
    p.add_argument("--bottleneck_dir", default="MODEL_DETAILS/bottlenecks",
                   help="the bottleneck cache; a gs:// or other URL works (default: %(default)s)")
    p.add_argument("--bottleneck_batch_size", type=command.positive, default=32,
                   help="images per forward pass (default: %(default)s)")
    p.add_argument("--bottleneck_engine", choices=("auto", "tflite", "tensorflow"),
                   default="auto", help="as retrain.py's (default: %(default)s)")
    p.add_argument("--inference_threads", type=command.positive,
                   help="threads per worker process for the module (default: the cores, "
                        "shared among local worker processes; 1 on a cluster runner)")
    return p.parse_known_args(argv)


def main(argv=None):
    return command.main("beam_bottlenecks", parse_args, run, argv,
                             "; finished shards are kept")


def run(args, beam_argv):
    """Check the data and the module here, then run the pipeline; return the exit status."""
    import apache_beam as beam

    from multilabel.beam import transforms
    from multilabel.features import bottleneck_shards
    from multilabel.data import dataset
    from multilabel.base import storage
    from multilabel.beam.pipelines import add_bottlenecks

    data = dataset.load_dataset(args.image_dir)
    paths = [p for part in (data.train, data.validation, data.test) for p in part.paths]
    module = _module(args)
    options = transforms.pipeline_options(beam_argv)
    threads = args.inference_threads or transforms.inference_threads(options)
    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    prefix = storage.join(bottleneck_shards.shards_folder(
        storage.join(args.bottleneck_dir, module.key)), f"{run_id}-{secrets.token_hex(4)}")
    logger.info("%d images; module %s (%s engine, %d threads a worker); new shards %s-*",
                len(set(paths)), module.path, module.engine, threads, prefix)
    pipeline = beam.Pipeline(options=options)
    add_bottlenecks(pipeline, paths, module, args.bottleneck_dir, prefix,
                    args.bottleneck_batch_size, threads)
    result = pipeline.run()
    result.wait_until_finish()
    counts = {name: transforms.counter(result, name)
              for name in ("computed", "in_shards", "cached_files", "identical", "failed")}
    logger.info("%d images: computed %d bottlenecks; %d were in shards, %d cached as files, %d "
                "identical to another image; %d images failed", len(set(paths)),
                *counts.values())
    failed = counts["failed"]
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _module(args):
    """The module as retrain.py resolves it, its cache key, and the engine to run it.

    The engine is chosen here, once, as retrain.py chooses it; a TFLite conversion is
    kept in the cache folder, where every worker reads it.
    """
    import numpy as np

    from multilabel.features import bottlenecks, engines, feature_modules
    from multilabel.base import storage

    path = feature_modules.resolve_module(args.tfhub_module, args.model_dir)
    height, width = feature_modules.image_size(path)
    key = bottlenecks.module_key(feature_modules.module_fingerprint(path), height, width)
    engine = engines.make_engine(args.bottleneck_engine, path,
                                 storage.join(args.bottleneck_dir, key))
    dim = engine(np.zeros([1, height, width, 3], np.float32)).shape[1]
    return _Module(path, height, width, key, dim, engine.name)


if __name__ == "__main__":
    sys.exit(main())
