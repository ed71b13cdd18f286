"""The Apache Beam pieces of beam_bottlenecks and beam_label: reading images, the two
model handlers for RunInference, and the options every runner needs.

Everything heavy is the project's own code run inside Beam: images are decoded by
`images.load_pixels` (so the numbers equal retrain.py's and label_image.py's), feature
vectors come from `engines`, probabilities from `labeller.run_batch` on a frozen
graph. What Beam adds is spreading the images over worker processes and machines.

Sharp edges this module handles, each found the hard way:
  * RunInference's adaptive batching shrinks batches to about two images on a busy
    machine; the handlers fix the batch size (minimum = maximum).
  * Beam shares one loaded model between the threads of a worker process, and a
    TFLite interpreter is not thread-safe: calls into an engine are serialised.
  * With one worker process per core, each model gets one thread (`inference_threads`),
    or the processes fight over the cores.
  * Decoded images are dropped from the results as soon as the model has run.
"""

import logging
import os
import socket
import threading
import time

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from multilabel.base import host, storage
from multilabel.features import bottlenecks
from multilabel.base.errors import UserError
from multilabel.data.image_sources import is_image_name, no_images_error
from multilabel.data.images import ImageError, load_pixels, scale

logger = logging.getLogger(__name__)

FAILED = "failed"  # the tag of the dead-letter output: (path, message) of a bad image
METRICS = "multilabel"  # namespace of the counters the commands print at the end
WORKERS = "multilabel.workers"  # per worker process: "<worker>|images", "<worker>|model_ms"
# Runners that run every worker on this machine (FnApiRunner is what DirectRunner runs
# these pipelines on when it does not hand them to Prism).
_DIRECT_RUNNERS = {"direct", "directrunner", "switchingdirectrunner", "bundlebaseddirectrunner",
                   "fnapirunner", "prismrunner", "prism"}


def pipeline_options(beam_argv):
    """Beam's options from the flags the command did not take itself.

    `flags=` is given even when empty: without it PipelineOptions parses `sys.argv`,
    the command's own flags included.
    """
    return PipelineOptions(flags=list(beam_argv))


def inference_threads(options, cores=None):
    """Threads one worker process gives its model.

    A local DirectRunner in one process (the default, or multi_threading) gets every
    core; with `direct_running_mode=multi_processing` the cores are shared among
    `direct_num_workers` processes. On a cluster runner a Python worker runs one
    process per core (Dataflow's default), so one thread each.
    """
    cores = cores or host.cores()
    runner = (options.view_as(StandardOptions).runner or "DirectRunner").lower()
    if runner not in _DIRECT_RUNNERS:
        return 1
    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode == "multi_processing":
        workers = direct.direct_num_workers or cores  # 0 means one per core
        return max(1, cores // workers)
    return cores


def for_workers(path):
    """`path` as a worker elsewhere reads it: a local path made absolute, a URL as it is.

    A cluster's worker does not run in the launching command's folder, so a relative
    path given on the command line (`./DATASET/images/1.jpg`, `--bottleneck_dir cache`)
    would name another file there, or none.
    """
    from multilabel.base import storage

    return path if storage.is_remote(path) else os.path.abspath(path)


def read_file(path):
    """The bytes of an image file on any file system Beam knows; ImageError if unreadable.

    Uncompressed on purpose: FileSystems would otherwise gunzip a `.gz` name. A local
    path must be a regular file (`storage.open_regular`): a FIFO would block a worker.
    """
    try:
        if not storage.is_remote(path):
            with storage.open_regular(path) as f:
                return f.read()
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            return f.read()
    except storage.NotRegularFileError as e:
        raise ImageError(e.strerror, path) from e
    except (OSError, ValueError) as e:  # Beam's BeamIOError is an OSError
        raise ImageError(f"cannot read the image file: {e}", path) from e


def images_in_folder(folder):
    """The image files directly in `folder` (by extension, no dot files), sorted.

    Listed through FileSystems, so a gs:// or hdfs:// folder works where Beam's extra
    for it is installed.
    """
    pattern = FileSystems.join(folder, "*")
    try:
        found = FileSystems.match([pattern])[0].metadata_list
    except OSError as e:
        raise UserError(f"cannot list the folder: {e}", folder) from e
    paths = sorted(m.path for m in found if is_image_name(os.path.basename(m.path)))
    if not paths:
        raise no_images_error(folder)
    return paths


class _Tallied(beam.DoFn):
    """A DoFn that sends bad images to the FAILED output, logged and counted."""

    def __init__(self):
        self._failed = Metrics.counter(METRICS, "failed")

    def fail(self, path, error):
        self._failed.inc()
        logger.warning("%s", error)
        return beam.pvalue.TaggedOutput(FAILED, (path, error.message))


class HashImage(_Tallied):
    """path -> (SHA-256 of its bytes, path): the bottleneck cache's key."""

    def process(self, path):
        try:
            yield bottlenecks.bytes_hash(read_file(path)), path
        except ImageError as e:
            yield self.fail(path, e)


class DecodeImage(_Tallied):
    """(key, path) -> (key, uint8 [height, width, 3] pixels), as retrain.py decodes it."""

    def __init__(self, height, width):
        super().__init__()
        self.height, self.width = height, width

    def process(self, element):
        key, path = element
        try:
            yield key, load_pixels(path, self.height, self.width, data=read_file(path))
        except ImageError as e:
            yield self.fail(path, e)


def worker_name():
    """This worker process, and where its `multilabel` code was imported from.

    The folder shows whether a cluster's worker runs the code the job shipped (an
    installed package) or a checkout it happened to find.
    """
    code = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return f"{socket.gethostname()} pid {os.getpid()}, code in {code}"


def count_on_worker(name, value=1):
    """Add `value` to this worker process's counter `name` (see WORKERS)."""
    Metrics.counter(WORKERS, f"{worker_name()}|{name}").inc(value)


class _Serialised:
    """Calls into a model one at a time: Beam shares it among a process's threads.

    Each worker counts the time it spends in its model.
    """

    def __init__(self, model):
        self._model = model
        self._lock = threading.Lock()

    def __call__(self, *args):
        with self._lock:
            start = time.perf_counter()
            out = self._model(*args)
            count_on_worker("model_ms", round(1000 * (time.perf_counter() - start)))
            return out


class _FixedBatches(ModelHandler):
    """A handler whose batches always hold `batch_size` images (but the last)."""

    def __init__(self, batch_size, threads):
        super().__init__()
        self._batch_size = batch_size
        self._threads = threads

    def batch_elements_kwargs(self):
        return {"min_batch_size": self._batch_size, "max_batch_size": self._batch_size}


class FeatureModelHandler(_FixedBatches):
    """A feature module for RunInference: uint8 pixels -> bottleneck vector.

    `engine` is the name of the engine the launching process chose (engines.make_engine):
    "tflite" loads the conversion kept in `conversion_folder` (converting again only if
    none was kept), anything else the SavedModel with TensorFlow. Images of another size
    than the module's own `size` (a member of a module set) are resized by `resize`
    (`module_set.resize_for`, which the exported graph runs too).
    """

    def __init__(self, engine, module_path, conversion_folder, size, resize, batch_size,
                 threads):
        super().__init__(batch_size, threads)
        self._engine = engine
        self._module_path = module_path
        self._conversion_folder = conversion_folder
        self._size = tuple(size)
        self._resize = resize

    def load_model(self):
        from multilabel.features import engines

        if self._engine == engines.TFLiteEngine.name:
            content = engines.cached_tflite_model(
                engines.tflite_model_path(self._conversion_folder))
            engine = engines.TFLiteEngine(content or engines.convert(self._module_path),
                                          interpreters=self._threads, split_batches=True)
        else:
            _limit_tensorflow_threads(self._threads)
            engine = engines.TensorFlowEngine(self._module_path)
        return _Serialised(_Resized(engine, self._size, self._resize))

    def run_inference(self, batch, model, inference_args=None):
        vectors = model(scale(np.stack(batch)))
        return [PredictionResult(None, vector) for vector in vectors]  # pixels dropped


class _Resized:
    """An engine fed images of any size: `resize(images, size)` to its own first."""

    def __init__(self, engine, size, resize):
        self._engine = engine
        self._size = size
        self._resize = resize

    def __call__(self, images):
        if images.shape[1:3] == self._size:
            return self._engine(images)
        return self._engine(np.asarray(self._resize(images, self._size)))


class FrozenGraphHandler(_FixedBatches):
    """The graph retrain.py exported, for RunInference: uint8 pixels -> probabilities."""

    def __init__(self, graph_path, allow_ops, batch_size, threads, timeout=None):
        super().__init__(batch_size, threads)
        self._graph_path = graph_path
        self._allow_ops = tuple(allow_ops)
        self._timeout = timeout  # seconds one run may take (beam_label --timeout)

    def load_model(self):
        import tensorflow as tf

        from multilabel.labelling.frozen_graph import load_frozen_graph

        model = load_frozen_graph(self._graph_path, allow_ops=self._allow_ops)
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=self._threads,
                                          inter_op_parallelism_threads=self._threads)
        session = tf.compat.v1.Session(graph=model.graph, config=config)
        run = model.runner(session, self._timeout)
        return _Serialised(lambda pixels: _probabilities(run, model, pixels))

    def run_inference(self, batch, model, inference_args=None):
        return [PredictionResult(None, p) for p in model(list(batch))]  # pixels dropped


def _probabilities(run, model, pixels):
    """One probability row per image, through label_image.py's own batch runner."""
    from multilabel.labelling.labeller import run_batch

    pending = [(i, scale(p)) for i, p in enumerate(pixels)]
    return [r.probabilities for r in run_batch(run, model, pending,
                                               model.batch_size or len(pending))]


def _limit_tensorflow_threads(threads):
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already started in this process: keep its pools
        pass


def counters(result, names, namespace=METRICS):
    """{name: final value} of the commands' counters (0 when one never counted), or
    None when the runner gives no metrics (Beam's DaskRunner, for one): the commands
    then count what was done from their output."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        found = result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]
    except NotImplementedError:
        return None
    return {name: sum(c.committed or 0 for c in found if c.key.metric.name == name)
            for name in names}


def worker_tallies(result):
    """[(worker, images, seconds in the model)] from each worker's counters, busiest
    first; empty when the runner gives no metrics."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        found = result.metrics().query(MetricsFilter().with_namespace(WORKERS))["counters"]
    except NotImplementedError:
        return []
    tallies = {}
    for c in found:
        worker, _, name = c.key.metric.name.rpartition("|")
        tallies.setdefault(worker, {})[name] = (c.committed or 0) + tallies.get(
            worker, {}).get(name, 0)
    return sorted(((w, t.get("images", 0), t.get("model_ms", 0) / 1000)
                   for w, t in tallies.items()), key=lambda row: (-row[1], row[0]))


def log_workers(log, result):
    """One log line per worker process: what ran where."""
    for worker, images, seconds in worker_tallies(result):
        log.info("Worker %s: %d images, %.1f s in the model", worker, images, seconds)
