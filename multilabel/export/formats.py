"""Shipping the trained classifier: frozen graph, SavedModel and TFLite.

Every format computes the same thing: float32 images `[N, H, W, 3]` in [0, 1] through
the feature module and the trained layer to sigmoid probabilities `[N, num_classes]`.
The frozen graph keeps the original's interface (`Placeholder` in, `final_result` out)
and loads with plain TensorFlow, without this project's code.
"""

import logging
import os

import tensorflow as tf

from multilabel.base import atomic, run_guard
from multilabel.features.feature_modules import load_module
from multilabel.training.head import add_final_layer

logger = logging.getLogger(__name__)
v1 = tf.compat.v1

INPUT_NAME = "Placeholder"


def frozen_graph_def(module_path, height, width, weights, biases, final_tensor_name):
    """The whole classifier as a GraphDef with every variable folded into a constant."""
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.float32, [None, height, width, 3], name=INPUT_NAME)
        bottleneck = load_module(module_path)(images)
        add_final_layer(bottleneck, weights.shape[1], final_tensor_name, weights, biases)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            return v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), [final_tensor_name])


def write_graph_def(path, graph_def):
    """Write a GraphDef atomically: readers see the old file or the new, never a part."""
    atomic.write_bytes(path, graph_def.SerializeToString())
    logger.info("Wrote %s (%.1f MB)", path, os.path.getsize(path) / 1e6)


class _ServingModel(tf.Module):
    """The module and the trained layer with a serving signature `image` -> `prediction`."""

    def __init__(self, module_path, height, width, weights, biases):
        super().__init__()
        self.module = load_module(module_path)
        self.weights = tf.Variable(weights, trainable=False, name="final_weights")
        self.biases = tf.Variable(biases, trainable=False, name="final_biases")
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="image")])

    def _serve(self, image):
        logits = tf.matmul(self.module(image), self.weights) + self.biases
        return {"prediction": tf.sigmoid(logits)}


def write_saved_model(path, module_path, height, width, weights, biases):
    """A TF2 SavedModel with signature `serving_default`: `image` -> `prediction`."""
    with atomic.atomic_folder(path, kind=run_guard.SAVED_MODEL) as staging:
        model = _ServingModel(module_path, height, width, weights, biases)
        tf.saved_model.save(model, staging, signatures={"serving_default": model.serve})
    logger.info("Wrote SavedModel %s", path)

