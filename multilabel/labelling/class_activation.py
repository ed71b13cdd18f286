"""Where the model looked: class activation maps read out of an exported frozen graph.

The head is one dense layer over a module's globally average-pooled last feature map F
[h, w, K]: logit_c = mean over positions of F[y, x] . W[:, c] + b_c. So the map
CAM_c[y, x] = F[y, x] . W[:, c] (Zhou et al., CVPR 2016) is exact, not an approximation:
its mean plus the bias is the logit, and each position's share of the evidence for
class c is what it adds to that mean. For a module set, each member's map is its own
block of features times its own rows of W, and the members' means add up to the logit.

A frozen graph holds the module as a function (a `StatefulPartitionedCall` of a function
in the graph's library), so the map is not a tensor of the graph itself: it is found
inside that function, by walking back from the features the final layer reads through
identities and concatenations to a mean over the two spatial axes of a 4-D tensor. The
function is then rebuilt as an ordinary graph that outputs the maps. Where the walk
reaches anything else (a TF1 Hub module's signature, a module that pools otherwise),
`explainer` raises `NotExplainable` saying so: no map is drawn rather than a false one.
The TFLite model keeps no intermediate tensors, so only the frozen graph is read here.
"""

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import function_def_to_graph

from multilabel.base.errors import UserError

_CALLS = ("StatefulPartitionedCall", "PartitionedCall")
_PASS_THROUGH = ("Identity", "IdentityN", "StopGradient", "Snapshot")
_LAYER = "final_retrain_ops"


class NotExplainable(UserError):
    """The graph's features cannot be traced back to a spatial map: why, in words."""


class Explainer:
    """`explain(images [N, H, W, 3] in [0, 1]) -> (probs [N, C], maps)`: the graph's
    probabilities and, for each of its members, the class activation maps [N, h, w, C]
    at the member's own resolution (logit contributions per position; the members' means
    over positions, plus the biases, are the logits)."""

    def __init__(self, graph_def, final_tensor_name, input_name="Placeholder"):
        nodes = {node.name: node for node in graph_def.node}
        if f"{_LAYER}/MatMul" not in nodes or f"{_LAYER}/final_weights" not in nodes:
            raise NotExplainable("the graph has no final layer as retrain.py exports it "
                                 f"({_LAYER}/MatMul)")
        self.weights = tf.make_ndarray(nodes[f"{_LAYER}/final_weights"].attr["value"].tensor)
        self.biases = tf.make_ndarray(nodes[f"{_LAYER}/final_biases"].attr["value"].tensor)
        self._functions = {f.signature.name: f for f in graph_def.library.function}
        self._graph = tf.Graph()
        with self._graph.as_default():
            tf.graph_util.import_graph_def(graph_def, name="")
            self._input = self._graph.get_tensor_by_name(f"{input_name}:0")
            self._probs = self._graph.get_tensor_by_name(f"{final_tensor_name}:0")
            features = self._graph.get_operation_by_name(f"{_LAYER}/MatMul").inputs[0]
            self._maps = self._pooled_maps(features)
        widths = [int(m.shape[-1]) for m in self._maps]
        if sum(widths) != self.weights.shape[0]:
            raise NotExplainable(f"the spatial maps found have {sum(widths)} channels, the "
                                 f"final layer reads {self.weights.shape[0]} features")
        self.member_count = len(self._maps)
        self._offsets = np.cumsum([0] + widths)

    def _pooled_maps(self, tensor):
        """The spatial maps `tensor` (the features) pools, in feature order, as tensors of
        this graph: a function called on the way is rebuilt in the graph, fed the call's
        own inputs."""
        op = tensor.op
        while op.type in _PASS_THROUGH:
            tensor = op.inputs[tensor.value_index if op.type == "IdentityN" else 0]
            op = tensor.op
        if op.type in ("ConcatV2", "Concat"):
            parts = op.inputs[:-1] if op.type == "ConcatV2" else op.inputs[1:]
            return [m for part in parts for m in self._pooled_maps(part)]
        if op.type == "Mean" and op.inputs[0].shape.rank == 4:
            axes = tf.get_static_value(op.inputs[1])
            if axes is not None and sorted(np.atleast_1d(axes) % 4) == [1, 2]:
                return [op.inputs[0]]
        if op.type in _CALLS and op.get_attr("f").name in self._functions:
            body = function_def_to_graph.function_def_to_graph(
                self._functions[op.get_attr("f").name])
            (inner,) = tf.graph_util.import_graph_def(
                body.as_graph_def(), name=f"class_activation_{len(self._graph.get_operations())}",
                input_map={t.name: op.inputs[k] for k, t in enumerate(body.inputs)},
                return_elements=[body.outputs[tensor.value_index].name])
            return self._pooled_maps(inner)
        raise NotExplainable(f"the module's features come from a {op.type} node, not a mean "
                             "over a spatial map: the module exposes only its pooled vector")

    def explain(self, images):
        with tf.compat.v1.Session(graph=self._graph) as session:
            probs, *maps = session.run([self._probs, *self._maps], {self._input: images})
        return probs, tuple(
            np.einsum("nyxk,kc->nyxc", feature_map,
                      self.weights[self._offsets[k]:self._offsets[k + 1]])
            for k, feature_map in enumerate(maps))
