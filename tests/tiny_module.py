"""A tiny but informative stand-in feature module, saved like the real ones.

Features of a [N, size, size, 3] image in [0, 1]: the mean of each colour channel in
each quadrant of a 2 x 2 grid (12 values), each channel's mean and standard deviation
over the whole image (6 values) and the mean of each channel's squared horizontal and
vertical differences (6 values, texture): D = 24. Solid colours, halves and stripes all
get different features, so a head trained on them learns something real, which
random-weight conv nets (nearly constant features) would not allow.
"""

import tensorflow as tf

from multilabel.features.backbones.saved_feature_module import FeatureVectorModule, save_feature_module

FEATURE_DIM = 24


def make_tiny_module(path, size=32):
    """Save the tiny module at `path` (a SavedModel folder) and return `path`."""
    # One variable, so loading in a v1 graph and freezing handle a real one.
    scale = tf.Variable(tf.ones([FEATURE_DIM]), trainable=False, name="feature_scale")

    features = _tiny_features(size, scale)
    save_feature_module(FeatureVectorModule(features, [scale], (size, size)), path)
    return path


def _tiny_features(size, scale):
    """The 24 features of a [N, size, size, 3] batch, times `scale`."""

    def features(images):
        half = size // 2
        quadrants = [images[:, :half, :half], images[:, :half, half:],
                     images[:, half:, :half], images[:, half:, half:]]
        parts = [tf.reduce_mean(q, axis=[1, 2]) for q in quadrants]
        mean, variance = tf.nn.moments(images, axes=[1, 2])
        dx = images[:, :, 1:] - images[:, :, :-1]
        dy = images[:, 1:] - images[:, :-1]
        parts += [mean, tf.sqrt(variance + 1e-12),
                  tf.reduce_mean(tf.square(dx), axis=[1, 2]),
                  tf.reduce_mean(tf.square(dy), axis=[1, 2])]
        return tf.concat(parts, axis=1) * scale

    return features


def make_tiny_trainable_module(path, size=32, seed=0):
    """A tiny module with layers to fine-tune: the features above, then two small
    convolutions (`conv1`, `conv2`, trainable) after a fixed centring (`norm/moving_mean`,
    not trainable, like batch norm's statistics), average-pooled: D = 24 + 8."""
    rng = tf.random.Generator.from_seed(seed)
    scale = tf.Variable(tf.ones([FEATURE_DIM]), trainable=False, name="feature_scale")
    mean = tf.Variable(tf.fill([3], 0.5), trainable=False, name="norm/moving_mean")
    conv1 = [tf.Variable(rng.normal([3, 3, 3, 8], stddev=0.3), name="conv1/kernel"),
             tf.Variable(tf.zeros([8]), name="conv1/bias")]
    conv2 = [tf.Variable(rng.normal([3, 3, 8, 8], stddev=0.3), name="conv2/kernel"),
             tf.Variable(tf.zeros([8]), name="conv2/bias")]
    tiny = _tiny_features(size, scale)

    def features(images):
        hidden = tf.nn.relu(tf.nn.conv2d(images - mean, conv1[0], 2, "SAME") + conv1[1])
        hidden = tf.nn.relu(tf.nn.conv2d(hidden, conv2[0], 2, "SAME") + conv2[1])
        return tf.concat([tiny(images), tf.reduce_mean(hidden, axis=[1, 2])], axis=1)

    module = FeatureVectorModule(features, [scale, mean, *conv1, *conv2], (size, size))
    save_feature_module(module, path)
    return path
