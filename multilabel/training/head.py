"""The new layer trained on top of the frozen feature module.

One fully connected layer from the bottleneck to one logit per class, and
`final_result = sigmoid(logits)`: each class gets its own probability, so an image can
carry several labels (the original retrain.py used softmax, one label per image).
"""

import collections

import tensorflow as tf

from multilabel.base.errors import UserError

v1 = tf.compat.v1

Head = collections.namedtuple(
    "Head", "bottleneck labels logits probs loss train_op weights biases global_step")


def add_final_layer(inputs, num_classes, final_tensor_name, weights=None, biases=None,
                    heads=None):
    """`(logits, probs, weights, biases)` on `inputs` `[N, D]`.

    With `weights` and `biases` given (numpy arrays) the layer is constant, as in the
    exported graph; otherwise they are new trainable variables. With `heads`, `inputs`
    is `[heads, N, D]` and as many independent layers are made, one per slice.
    """
    dim = inputs.shape[-1]
    lead = [] if heads is None else [heads]
    with v1.variable_scope("final_retrain_ops"):
        if weights is None:
            # Small random weights, as the original: zeros would give every class the
            # same gradient direction at the first step and nothing else changes.
            weights = v1.get_variable(
                "final_weights", [*lead, dim, num_classes],
                initializer=v1.truncated_normal_initializer(stddev=0.001))
            biases = v1.get_variable("final_biases", [*lead, num_classes],
                                     initializer=v1.zeros_initializer())
        else:
            weights = tf.constant(weights, tf.float32, name="final_weights")
            biases = tf.constant(biases, tf.float32, name="final_biases")
        product = tf.matmul(inputs, weights)
        if heads is None:
            logits = tf.nn.bias_add(product, biases, name="logits")
        else:
            logits = tf.add(product, biases[:, tf.newaxis, :], name="logits")
    probs = tf.sigmoid(logits, name=final_tensor_name)
    if probs.op.name != final_tensor_name:
        # TensorFlow renamed it (`NAME_1`): the graph already has a node of that name, and
        # a reader asking for NAME would get that node, not the probabilities.
        raise UserError(f"the output name {final_tensor_name!r} is taken by another node of "
                        "the graph; choose another --final_tensor_name")
    return logits, probs, weights, biases


def multilabel_loss(labels, logits, weights, l2_regularization=0.0, pos_weight=None):
    """Sigmoid cross-entropy averaged over images and classes, plus the L2 penalty.

    The penalty is `l2_regularization * sum(weights ** 2)`; `pos_weight` (one value or one
    per class) scales the loss of positive labels, against class imbalance. With several
    heads stacked on a leading axis the loss is the sum of theirs. Plain TensorFlow ops,
    so the head's v1 graph and fine-tuning's eager loop share it.
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


def build_training_head(dim, num_classes, final_tensor_name, optimizer, learning_rate,
                        l2_regularization=0.0, pos_weight=None, heads=None, feature_scales=None):
    """The training graph: placeholders for cached bottlenecks and labels, loss, optimiser.

    The loss is `multilabel_loss`. With `feature_scales` (`[dim]`, see feature_scaling)
    the layer sees the bottlenecks multiplied by them: its weights are then in the scaled
    space, and must be folded before they are used on the bottlenecks themselves.

    With `heads`, the placeholders take `[heads, N, ...]` and that many heads train at
    once, each exactly as it would alone: the loss is the sum of theirs, and Adam and
    SGD update every weight from its own gradient.
    """
    lead = [] if heads is None else [heads]
    bottleneck = v1.placeholder(tf.float32, [*lead, None, dim], name="BottleneckInputPlaceholder")
    labels = v1.placeholder(tf.float32, [*lead, None, num_classes], name="GroundTruthInput")
    inputs = bottleneck
    if feature_scales is not None:
        inputs = bottleneck * tf.constant(feature_scales, tf.float32, name="feature_scales")
    logits, probs, weights, biases = add_final_layer(inputs, num_classes, final_tensor_name,
                                                     heads=heads)
    with v1.name_scope("loss"):
        loss = multilabel_loss(labels, logits, weights, l2_regularization, pos_weight)
    global_step = v1.train.get_or_create_global_step()
    if optimizer == "adam":
        opt = v1.train.AdamOptimizer(learning_rate)
    elif optimizer == "sgd":
        opt = v1.train.GradientDescentOptimizer(learning_rate)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    train_op = opt.minimize(loss, global_step=global_step)
    return Head(bottleneck, labels, logits, probs, loss, train_op, weights, biases, global_step)
