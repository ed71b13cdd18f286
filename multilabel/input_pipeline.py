"""Feeding images to a feature module: parallel decoding ahead of the forward pass."""

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from multilabel.errors import UserError
from multilabel.images import load_pixels, scale


def image_batches(paths, height, width, batch_size):
    """Yield float32 `[n, height, width, 3]` batches of `paths`, in order.

    tf.data decodes several images at once on all cores and keeps the next batches
    ready while the engine works on the current one, so the forward pass (the real
    cost) never waits on JPEG decoding. Decoding is `images.load_pixels` and scaling
    `images.scale`, the same code (and so the same numbers) as label_image.py's.
    """
    failures = []

    def load(path):
        try:
            return load_pixels(path.decode("utf-8"), height, width)
        except UserError as e:
            # Raised inside tf.data it would come out as an UnknownError with two
            # tracebacks; keep it, and raise it as itself before the next batch.
            failures.append(e)
            return np.zeros([height, width, 3], np.uint8)

    dataset = tf.data.Dataset.from_tensor_slices(list(paths))
    dataset = dataset.map(
        lambda p: tf.ensure_shape(tf.numpy_function(load, [p], tf.uint8), [height, width, 3]),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    for batch in dataset.as_numpy_iterator():
        if failures:
            raise failures[0]
        yield scale(batch)


def feature_batches(engine, paths, height, width, batch_size, description="Bottlenecks"):
    """Yield the engine's vectors for `paths` batch by batch, with a progress bar."""
    with tqdm(total=len(paths), unit="img", desc=description, dynamic_ncols=True) as bar:
        for images in image_batches(paths, height, width, batch_size):
            yield engine(images)
            bar.update(len(images))
