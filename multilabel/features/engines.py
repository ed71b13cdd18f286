"""Engines that run a feature module on batches of images.

An engine is a callable: float32 `[N, H, W, 3]` images in [0, 1] -> `[N, D]` vectors.

On a laptop CPU the module's forward pass is nearly all of a run's cost, and the engine
is what decides it: TensorFlow runs MobileNetV2 at about 43 images/s on 2 cores, the
same network converted to TFLite and run by XNNPACK (through LiteRT, TFLite's maintained
runtime) four to six times as fast. So the default is the TFLite engine, but only where
it computes the same vectors as TensorFlow (the reference, and what the exported frozen
graph runs): `make_engine` checks that on a probe batch and falls back to TensorFlow
otherwise.
"""

import logging

import numpy as np
import tensorflow as tf

from multilabel.base import storage
from multilabel.base.options import QUANTIZED
from multilabel.base.errors import UserError
from multilabel.features.feature_modules import image_size, load_module
# The TFLite engine has a module of its own, which labelling loads without TensorFlow;
# it is this module's engine too, re-exported here for its callers.
from multilabel.features.tflite_engine import INVOKE_IMAGES, TFLiteEngine  # noqa: F401

logger = logging.getLogger(__name__)

KINDS = ("auto", "tflite", "tensorflow")
# Largest relative difference ||tflite - tensorflow|| / ||tensorflow|| of one vector that
# still counts as the same vector.
TOLERANCE = 1e-4
TFLITE_FILE = "module.tflite"
PROBE_IMAGES = 2
# What `convert` can make of a SavedModel: float32, the reference, and three smaller forms.
FLOAT32 = "float32"
QUANTIZATIONS = (FLOAT32,) + QUANTIZED


class TensorFlowEngine:
    """The SavedModel run eagerly by TensorFlow: the reference every engine must match."""

    name = "tensorflow"

    def __init__(self, module_path):
        self._module = load_module(module_path)

    def __call__(self, images):
        return np.asarray(self._module(tf.convert_to_tensor(images, tf.float32)))


def convert(saved_model_path, quantization=FLOAT32, representative_images=None):
    """A SavedModel (a feature module, or the exported classifier) as a TFLite
    flatbuffer: the project's one TFLite conversion.

    `quantization` (QUANTIZATIONS): float32 as it is; float16 weights; "dynamic" range
    (int8 weights, float activations); or int8 weights and activations, their ranges
    calibrated on `representative_images` (float32 `[H, W, 3]` arrays), with float input
    and output kept, so every client feeds every export the same way.

    `from_saved_model` on the folder, not `from_concrete_functions`: the latter gives
    NaN outputs for Keras 3 models without any error.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; expected one of "
                         f"{QUANTIZATIONS}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_path)
    if quantization != FLOAT32:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if representative_images is None or not len(representative_images):
            raise ValueError("int8 quantization needs representative images")
        converter.representative_dataset = lambda: (
            [np.asarray(image, np.float32)[np.newaxis]] for image in representative_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def cached_tflite_model(path):
    """The bytes of a kept TFLite model, or None when there is none."""
    return storage.read_bytes(path)


def relative_difference(vectors, reference):
    """The largest ||vectors[i] - reference[i]|| / ||reference[i]|| over the rows."""
    vectors = np.asarray(vectors, np.float64)
    reference = np.asarray(reference, np.float64)
    if vectors.shape != reference.shape:
        return float("inf")
    norms = np.maximum(np.linalg.norm(reference, axis=1), np.finfo(np.float32).tiny)
    return float((np.linalg.norm(vectors - reference, axis=1) / norms).max())


def tflite_model_path(cache_folder):
    """Where the converted module is kept: meant to be the bottleneck cache's folder for
    the module, whose name already depends on the module's content, so a module is
    converted once and another module never reuses its conversion."""
    return storage.join(cache_folder, TFLITE_FILE)


def make_engine(kind, module_path, cache_folder):
    """The engine `kind` names for the module, its TFLite model kept in `cache_folder`.

    "tensorflow" is the reference. "tflite" converts the module (or reuses the kept
    conversion) and raises UserError when it cannot. "auto", the default, uses TFLite
    when its vectors match TensorFlow's within TOLERANCE on a probe batch and falls back
    to TensorFlow, with one log line, when conversion fails or they do not match. A
    conversion is kept (atomically) only once it has matched, so a kept one is used
    without loading TensorFlow's copy of the module again.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown engine kind {kind!r}; expected one of {KINDS}")
    if kind == "tensorflow":
        return TensorFlowEngine(module_path)
    path = tflite_model_path(cache_folder)
    kept = cached_tflite_model(path)
    if kept is not None:
        logger.info("TFLite engine: reusing %s", path)
        return TFLiteEngine(kept)
    try:
        logger.info("Converting %s to TFLite (once per module)", module_path)
        content = convert(module_path)
        engine = TFLiteEngine(content)
    except Exception as e:  # noqa: BLE001 - the converter raises many unrelated types
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        if kind == "tflite":
            raise UserError(f"cannot convert the module to TFLite: {reason}", module_path) from e
        logger.warning("Cannot convert the module to TFLite (%s); using TensorFlow", reason)
        return TensorFlowEngine(module_path)
    reference = TensorFlowEngine(module_path)
    difference = _probe_difference(engine, reference, module_path)
    if difference <= TOLERANCE:
        storage.write_bytes(path, content)
        logger.info("TFLite engine matches TensorFlow (relative difference %.2g); kept in %s",
                    difference, path)
        return engine
    if kind == "tflite":
        logger.warning("The TFLite engine differs from TensorFlow by %.2g (relative), more "
                       "than %g; using it as asked", difference, TOLERANCE)
        return engine
    logger.warning("The TFLite engine differs from TensorFlow by %.2g (relative), more than "
                   "%g; using TensorFlow", difference, TOLERANCE)
    return reference


def _probe_difference(engine, reference, module_path):
    """Relative difference of the two engines on a fixed batch of random images."""
    height, width = image_size(module_path)
    probe = np.random.default_rng(0).random((PROBE_IMAGES, height, width, 3), dtype=np.float32)
    return relative_difference(engine(probe), reference(probe))
