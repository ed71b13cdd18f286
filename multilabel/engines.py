"""Engines that run a feature module on batches of images.

An engine is a callable: float32 `[N, H, W, 3]` images in [0, 1] -> `[N, D]` vectors.
"""

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub


class TensorFlowEngine:
    """The SavedModel run eagerly by TensorFlow: the reference every engine must match."""

    def __init__(self, module_path):
        self._module = hub.load(module_path)

    def __call__(self, images):
        return np.asarray(self._module(tf.convert_to_tensor(images, tf.float32)))
