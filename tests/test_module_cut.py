"""Cutting a module below its tuned layers: the bottom and the top compose to the
module, gradients reach the tuned variables through the top, and a graph that can't be
cut is said so."""

import numpy as np
import pytest
import tensorflow as tf

from multilabel.training import module_cut


class _Residual(tf.Module):
    """conv1 -> relu -> square -> conv2, plus a skip from the relu around the rest: a
    cut at conv2 needs two tensors, the skip and conv2's input."""

    def __init__(self):
        super().__init__()
        rng = tf.random.Generator.from_seed(1)
        self.mean = tf.Variable(tf.fill([3], 0.5), trainable=False, name="norm/moving_mean")
        self.conv1 = tf.Variable(rng.normal([3, 3, 3, 4], stddev=0.3), name="conv1/kernel")
        self.conv2 = tf.Variable(rng.normal([3, 3, 4, 4], stddev=0.3), name="conv2/kernel")
        self.head = tf.Variable(rng.normal([4, 6], stddev=0.3), name="dense/kernel")

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def __call__(self, images):
        hidden = tf.nn.relu(tf.nn.conv2d(images - self.mean, self.conv1, 1, "SAME"))
        block = hidden + tf.nn.relu(tf.nn.conv2d(tf.square(hidden), self.conv2, 1, "SAME"))
        return tf.reduce_mean(block, axis=[1, 2]) @ self.head


@pytest.fixture
def residual():
    module = _Residual()
    return module, module.__call__.get_concrete_function()


def _images(count=3):
    return tf.constant(np.random.default_rng(0).random((count, 8, 8, 3), np.float32))


@pytest.mark.parametrize("tuned, shapes", [("head", [(4,)]),
                                           ("conv2", [(8, 8, 4), (8, 8, 4)]),
                                           ("conv1", [(8, 8, 3)])])
def test_the_top_of_the_bottom_is_the_module(residual, tuned, shapes):
    module, function = residual
    variables = {"head": [module.head], "conv2": [module.conv2, module.head],
                 "conv1": [module.conv1, module.conv2, module.head]}[tuned]
    cut = module_cut.cut_function(function, variables)
    assert sorted(cut.shapes) == sorted(shapes)
    tensors = cut.bottom(_images())
    assert sorted(tuple(t.shape[1:]) for t in tensors) == sorted(shapes)
    np.testing.assert_allclose(cut.top(*tensors), module(_images()), atol=1e-6)


def test_gradients_reach_the_tuned_variables_through_the_top_only(residual):
    module, function = residual
    cut = module_cut.cut_function(function, [module.conv2, module.head])
    tensors = cut.bottom(_images())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(cut.top(*tensors)))
    conv1, conv2, head = tape.gradient(loss, [module.conv1, module.conv2, module.head])
    assert conv1 is None  # below the cut: not even in the top's graph
    assert float(tf.norm(conv2)) > 0 and float(tf.norm(head)) > 0


def test_the_cut_reads_the_variables_current_values(residual):
    module, function = residual
    cut = module_cut.cut_function(function, [module.head])
    tensors = cut.bottom(_images())
    module.head.assign(module.head * 2)
    np.testing.assert_allclose(cut.top(*tensors), module(_images()), atol=1e-6)


class _Nested(tf.Module):
    """Reads its variable inside a nested tf.function: its graph can't be cut here."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(tf.ones([3, 2]), name="dense/kernel")

    @tf.function
    def _inner(self, x):
        return x @ self.kernel

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def __call__(self, images):
        return self._inner(tf.reduce_mean(images, axis=[1, 2]))


def test_a_graph_that_cannot_be_cut_is_none_and_uncut_runs_it_whole():
    module = _Nested()
    function = module.__call__.get_concrete_function()
    assert module_cut.cut_function(function, [module.kernel]) is None
    whole = module_cut.uncut(module, (8, 8))
    assert whole.shapes == ((8, 8, 3),)
    (images,) = whole.bottom(_images())
    np.testing.assert_allclose(whole.top(images), module(_images()))
