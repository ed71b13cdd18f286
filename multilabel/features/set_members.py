"""How a module set's members meet their images, and where a saved set keeps them.

Kept apart from module_set (which opens sets and computes their bottlenecks) so that
the exported graph's resize and the saved set's layout have one home that fine-tuning
and the Beam pipelines use without pulling in the bottleneck machinery.
"""

import tensorflow as tf

# Part of a resized member's cache key and of a combination's folder name: change it
# whenever `resize_for` changes what pixels a member sees.
RESIZE_VERSION = "tf-resize-bilinear-v1"


def resize_for(images, size):
    """`images` `[N, H, W, 3]` resized to `size` (height, width) for a member, or as they are.

    Bilinear with half-pixel centres (`tf.image.resize`'s default): one TensorFlow op,
    the same kernel eagerly (bottlenecks) and in the exported graph, and a TFLite
    builtin. Antialiasing would be kinder to large reductions, but its op is not one
    TFLite runs without TensorFlow's own kernels.
    """
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    return tf.image.resize(images, size, method="bilinear")


def saved_members(module):
    """The members of a loaded module set saved by `module_set`, in order (restored
    as the tracked `members` list); `(module,)` for a module of its own."""
    members = getattr(module, "members", None)
    return tuple(members) if members else (module,)
