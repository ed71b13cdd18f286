"""Shared test setup: quiet TensorFlow, and one tiny feature module per session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before anything imports TensorFlow

import pytest  # noqa: E402

from multilabel import feature_modules  # noqa: E402
from tests.tiny_module import make_tiny_module  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENES = os.path.join(os.path.dirname(REPO), "shared", "datasets", "miml-scenes")


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
    """The real scene set beside the repository, or a skip where it is missing."""
    if not os.path.isdir(os.path.join(SCENES, "images")):
        pytest.skip(f"scene images not found at {SCENES}")
    return SCENES
