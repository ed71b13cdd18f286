"""The new layer trained on top of the frozen feature module.

One fully connected layer from the bottleneck to one logit per class, and
`final_result = sigmoid(logits)`: each class gets its own probability, so an image can
carry several labels (the original retrain.py used softmax, one label per image).

`LinearHead` is the layer while it trains (phase 1, the out-of-fold heads, fine-tuning);
`add_final_layer` builds it with constant weights into the exported graph.
"""

import numpy as np
import tensorflow as tf

from multilabel.base.errors import UserError

INITIAL_STDDEV = 0.001


def initial_layer(dim, num_classes, seed, heads=None):
    """`(weights, biases)` to start training from, the same for the same `seed`.

    Small random weights, as the original: zeros would give every class the same
    gradient direction at the first step and nothing else changes. Drawn from a
    truncated normal by a stateless generator, so a seed gives the same weights on every
    run and machine; biases are zero. With `heads`, `heads` layers stacked on a leading axis.
    """
    lead = [] if heads is None else [heads]
    weights = tf.random.stateless_truncated_normal(
        [*lead, dim, num_classes], seed=[seed, 0], stddev=INITIAL_STDDEV)
    return weights.numpy(), np.zeros([*lead, num_classes], np.float32)


class LinearHead(tf.Module):
    """The trainable layer: `weights` `[D, C]` and `biases` `[C]`, or with a leading
    axis of heads (`[H, D, C]`, `[H, C]`) that many independent layers, each on its own
    slice of `[H, N, D]` inputs.

    With `feature_scales` (`[D]`, see feature_scaling) the layer sees its inputs
    multiplied by them: its weights are then in the scaled space, and must be folded
    before they are used on the inputs themselves.
    """

    def __init__(self, weights, biases, feature_scales=None):
        super().__init__(name="final_retrain_ops")
        self.weights = tf.Variable(weights, dtype=tf.float32, name="final_weights")
        self.biases = tf.Variable(biases, dtype=tf.float32, name="final_biases")
        self._scales = (None if feature_scales is None
                        else tf.constant(feature_scales, tf.float32))

    def logits(self, inputs):
        if self._scales is not None:
            inputs = inputs * self._scales
        return tf.matmul(inputs, self.weights) + self.biases[..., tf.newaxis, :]

    def loss(self, inputs, labels, l2_regularization=0.0, pos_weight=None):
        return multilabel_loss(labels, self.logits(inputs), self.weights, l2_regularization,
                               pos_weight)


def multilabel_loss(labels, logits, weights, l2_regularization=0.0, pos_weight=None):
    """Sigmoid cross-entropy averaged over images and classes, plus the L2 penalty.

    The penalty is `l2_regularization * sum(weights ** 2)`; `pos_weight` (one value or one
    per class) scales the loss of positive labels, against class imbalance. With several
    heads stacked on a leading axis the loss is the sum of theirs.
    """
    if pos_weight is None:
        per_label = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    else:
        per_label = tf.nn.weighted_cross_entropy_with_logits(
            labels=labels, logits=logits, pos_weight=tf.constant(pos_weight, tf.float32))
    loss = tf.reduce_sum(tf.reduce_mean(per_label, axis=[-2, -1]))
    if l2_regularization:
        loss += l2_regularization * tf.reduce_sum(tf.square(weights))
    return loss


def add_final_layer(inputs, num_classes, final_tensor_name, weights, biases):
    """The trained layer with constant `weights` `[D, num_classes]` and `biases` on
    `inputs` `[N, D]`, built into the current (graph-mode) graph as the exported graph
    has it: `final_retrain_ops/{final_weights, final_biases, MatMul, logits}` and the
    probabilities named `final_tensor_name`. Returns `(logits, probs)`."""
    if np.shape(weights)[-1] != num_classes:
        raise ValueError(f"weights for {np.shape(weights)[-1]} classes, not {num_classes}")
    with tf.name_scope("final_retrain_ops"):
        weights = tf.constant(weights, tf.float32, name="final_weights")
        biases = tf.constant(biases, tf.float32, name="final_biases")
        logits = tf.nn.bias_add(tf.matmul(inputs, weights), biases, name="logits")
    probs = tf.sigmoid(logits, name=final_tensor_name)
    if probs.op.name != final_tensor_name:
        # TensorFlow renamed it (`NAME_1`): the graph already has a node of that name, and
        # a reader asking for NAME would get that node, not the probabilities.
        raise UserError(f"the output name {final_tensor_name!r} is taken by another node of "
                        "the graph; choose another --final_tensor_name")
    return logits, probs
