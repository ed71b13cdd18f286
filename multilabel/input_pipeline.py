"""Feeding images to a feature module: parallel decoding ahead of the forward pass."""

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from multilabel.distortions import distorted_image
from multilabel.errors import UserError
from multilabel.images import load_pixels, scale


def image_batches(paths, height, width, batch_size):
    """Yield float32 `[n, height, width, 3]` batches of `paths`, in order.

    tf.data decodes several images at once on all cores and keeps the next batches
    ready while the engine works on the current one, so the forward pass (the real
    cost) never waits on JPEG decoding. Decoding is `images.load_pixels` and scaling
    `images.scale`, the same code (and so the same numbers) as label_image.py's.
    """
    items = tf.data.Dataset.from_tensor_slices(list(paths))
    for batch in _parallel_batches(
            items, lambda path: load_pixels(path.decode("utf-8"), height, width),
            [height, width, 3], tf.uint8, batch_size):
        yield scale(batch)


def distorted_batches(paths, seeds, height, width, distortions, batch_size):
    """Yield float32 batches of `distortions.distorted_image` views of `paths`, in order.

    Image i is distorted by a generator seeded with `seeds[i]`, so a batch is the same
    whichever thread decodes it; the decoding runs in parallel, as in `image_batches`.
    """
    items = tf.data.Dataset.from_tensor_slices((list(paths), np.asarray(seeds, np.int64)))

    def load(path, seed):
        return distorted_image(path.decode("utf-8"), height, width, distortions,
                               np.random.default_rng(seed))

    yield from _parallel_batches(items, load, [height, width, 3], tf.float32, batch_size)


def _parallel_batches(items, load, shape, dtype, batch_size):
    """Yield numpy batches of `load(*item)` over a tf.data `items`, several at once."""
    failures = []

    def guarded(*item):
        try:
            return load(*item)
        except UserError as e:
            # Raised inside tf.data it would come out as an UnknownError with two
            # tracebacks; keep it, and raise it as itself before the next batch.
            failures.append(e)
            return np.zeros(shape, dtype.as_numpy_dtype)

    dataset = items.map(
        lambda *item: tf.ensure_shape(tf.numpy_function(guarded, list(item), dtype), shape),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    for batch in dataset.as_numpy_iterator():
        if failures:
            raise failures[0]
        yield batch


def feature_batches(engine, paths, height, width, batch_size, description="Bottlenecks"):
    """Yield the engine's vectors for `paths` batch by batch, with a progress bar."""
    with tqdm(total=len(paths), unit="img", desc=description, dynamic_ncols=True) as bar:
        for images in image_batches(paths, height, width, batch_size):
            yield engine(images)
            bar.update(len(images))
