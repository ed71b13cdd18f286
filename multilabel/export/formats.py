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
MODULE_OUTPUT = "module_features"  # the features in a module's own frozen graph


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


def module_graph_def(module_path, height, width):
    """The feature module alone as a frozen GraphDef: `Placeholder` -> MODULE_OUTPUT, the
    features. `with_final_layer` turns it into the classifier's graph in a fraction of the
    time loading and freezing the module takes, so a run keeps it beside the module's
    TFLite conversion and derives its graph from it."""
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.float32, [None, height, width, 3], name=INPUT_NAME)
        tf.identity(load_module(module_path)(images), name=MODULE_OUTPUT)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            return v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), [MODULE_OUTPUT])


def with_final_layer(module_graph, weights, biases, final_tensor_name):
    """The classifier's frozen GraphDef from the module's (`module_graph_def`): the
    trained layer added as `frozen_graph_def` adds it (`training.head.add_final_layer`)."""
    graph = tf.Graph()
    with graph.as_default():
        v1.import_graph_def(module_graph, name="")
        add_final_layer(graph.get_tensor_by_name(f"{MODULE_OUTPUT}:0"), weights.shape[1],
                        final_tensor_name, weights, biases)
    return graph.as_graph_def()


def parse_graph_def(data):
    """A GraphDef from its serialized bytes; ValueError for bytes that are not one."""
    graph_def = v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError, by implementation
        raise ValueError(f"not a GraphDef: {e}") from e
    return graph_def


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

