"""Shared test setup: quiet TensorFlow, and one tiny feature module per session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before anything imports TensorFlow

import pytest  # noqa: E402

from tests.tiny_module import make_tiny_module  # noqa: E402


@pytest.fixture(scope="session")
def tiny_module(tmp_path_factory):
    """Path of a saved tiny module (32 x 32 input, 24 features); do not modify it."""
    return make_tiny_module(str(tmp_path_factory.mktemp("modules") / "tiny"), size=32)
