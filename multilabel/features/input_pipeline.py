"""Feeding images to feature modules: each worker decodes a batch, then runs it.

On a CPU the forward pass and decoding share the same cores, so the pipeline has one
worker thread per core, and each does both for its own batch in turn: decode it (Pillow
lets go of the GIL while it decodes and resizes), then run it (so does the interpreter).
No thread waits on another and no core is asked to run two things at once, which is
what kept a separate decoding pool and one multi-threaded interpreter short of the
engine's pace. Results come back in the order of the paths, a few batches ahead.
"""

import collections
import concurrent.futures
import logging
import time

import numpy as np
import tensorflow as tf

from multilabel.data.distortions import distorted_image
from multilabel.base.host import cores
from multilabel.base.errors import UserError
from multilabel.base.progress import progress
from multilabel.data.images import load_pixels, scale

logger = logging.getLogger(__name__)

# Batches in flight per worker: enough that a worker never waits for its next batch,
# few enough that an interrupted run stops within a batch or two.
AHEAD = 2


def mapped_batches(function, paths, height, width, batch_size, workers=None):
    """Yield `function(images)` for consecutive batches of `paths`, in order.

    `images` is the batch decoded as float32 `[n, height, width, 3]` in [0, 1] by
    `images.load_pixels` and `images.scale` (label_image.py's own code, so the same
    numbers). `function` runs in the decoding thread, so it can feed one decoded batch
    to several engines; it is called from `workers` threads at once (default: one per
    core). An image that cannot be decoded raises its own `UserError` when its batch's
    turn comes; batches not yet started are then dropped.
    """
    workers = workers or cores()
    batches = (paths[i:i + batch_size] for i in range(0, len(paths), batch_size))
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="decode")
    pending = collections.deque()
    try:
        for batch in batches:
            pending.append(pool.submit(_decoded_and_run, function, batch, height, width))
            if len(pending) >= workers * AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def image_batches(paths, height, width, batch_size):
    """Yield float32 `[n, height, width, 3]` batches of `paths`, in order, decoded in parallel."""
    return mapped_batches(lambda images: images, paths, height, width, batch_size)


def distorted_batches(paths, seeds, height, width, distortions, batch_size):
    """Yield float32 batches of `distortions.distorted_image` views of `paths`, in order.

    Image i is distorted by a generator seeded with `seeds[i]`, so a batch is the same
    whichever thread decodes it. tf.data decodes and distorts several images at once,
    in parallel with the training step that takes the batch before.
    """
    shape = [height, width, 3]
    failures = []

    def load(path, seed):
        try:
            return distorted_image(path.decode("utf-8"), height, width, distortions,
                                   np.random.default_rng(seed))
        except UserError as e:
            # Raised inside tf.data it would come out as an UnknownError with two
            # tracebacks; keep it, and raise it as itself before the next batch.
            failures.append(e)
            return np.zeros(shape, np.float32)

    dataset = tf.data.Dataset.from_tensor_slices((list(paths), np.asarray(seeds, np.int64)))
    dataset = dataset.map(
        lambda path, seed: tf.ensure_shape(tf.numpy_function(load, [path, seed], tf.float32),
                                           shape),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    for batch in dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
        if failures:
            raise failures[0]
        yield batch


def feature_batches(engine, paths, height, width, batch_size, description="Bottlenecks"):
    """Yield the engine's vectors for `paths` batch by batch, showing progress."""
    start = time.perf_counter()
    with progress(len(paths), description) as shown:
        for vectors in mapped_batches(engine, paths, height, width, batch_size):
            yield vectors
            shown.update(len(vectors))
    seconds = time.perf_counter() - start
    logger.info("%s: %d images in %.1f s (%.0f images/s)", description, len(paths), seconds,
                len(paths) / seconds)


def _decoded_and_run(function, paths, height, width):
    return function(scale([load_pixels(p, height, width) for p in paths]))

