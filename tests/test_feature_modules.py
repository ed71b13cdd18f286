import hashlib
import logging
import shutil
import socket

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from multilabel.features import feature_modules
from multilabel.base.errors import UserError
from multilabel.features.backbones.saved_feature_module import FeatureVectorModule, save_feature_module
from tests.tiny_module import FEATURE_DIM

ORIGINAL_URL = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/2"


@pytest.fixture
def network_attempts(monkeypatch):
    """Make every network access fail, and record it so that a test can assert on it."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "tfhub_cache"
    cache.mkdir()
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    return cache


def _images():
    """Four 32 x 32 images that differ in colour, layout and texture."""
    red = np.zeros([32, 32, 3], np.float32)
    red[..., 0] = 1.0
    halves = np.zeros([32, 32, 3], np.float32)
    halves[:, 16:] = 1.0
    stripes = np.zeros([32, 32, 3], np.float32)
    stripes[:, ::2] = 0.5
    return np.stack([red, red[..., ::-1], halves, stripes])


def test_tiny_module_features_tell_images_apart(tiny_module):
    features = hub.load(tiny_module)(tf.constant(_images())).numpy()
    assert features.shape == (4, FEATURE_DIM)
    distances = np.linalg.norm(features[:, None] - features[None], axis=-1)
    assert (distances + np.eye(4) > 0.1).all()


def test_local_folder_resolves_to_itself(tiny_module, tmp_path, network_attempts):
    assert feature_modules.resolve_module(tiny_module, str(tmp_path)) == tiny_module
    assert network_attempts == []


def test_file_url_resolves_to_the_folder(tiny_module, tmp_path, network_attempts):
    path = feature_modules.resolve_module("file://" + tiny_module, str(tmp_path))
    assert path == tiny_module
    assert hub.load(path)(tf.constant(_images())).shape == (4, FEATURE_DIM)
    assert network_attempts == []


def test_known_name_uses_the_module_already_built(tiny_module, tmp_path, network_attempts):
    target = tmp_path / feature_modules.DEFAULT_MODULE
    shutil.copytree(tiny_module, target)
    assert feature_modules.resolve_module(feature_modules.DEFAULT_MODULE, str(tmp_path)) == \
        str(target)
    assert network_attempts == []


def test_url_is_served_from_a_filled_hub_cache(tiny_module, tmp_path, hub_cache,
                                                network_attempts):
    url = "https://tfhub.dev/someone/some_module/1"
    cached = hub_cache / hashlib.sha1(url.encode("utf8")).hexdigest()
    shutil.copytree(tiny_module, cached)
    path = feature_modules.resolve_module(url, str(tmp_path / "MODEL"))
    assert path == str(cached)
    assert hub.load(url)(tf.constant(_images())).shape == (4, FEATURE_DIM)
    assert network_attempts == []


def test_original_url_falls_back_to_the_local_module_with_one_log_line(
        tiny_module, tmp_path, hub_cache, network_attempts, caplog):
    shutil.copytree(tiny_module, tmp_path / "mobilenet_v2_100_224")
    with caplog.at_level(logging.INFO, logger="multilabel"):
        path = feature_modules.resolve_module(ORIGINAL_URL, str(tmp_path))
    assert path == str(tmp_path / "mobilenet_v2_100_224")
    assert network_attempts, "the URL should have been tried first"
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("multilabel")]
    assert len(lines) == 1 and "using the local mobilenet_v2_100_224" in lines[0]


def test_unreachable_unknown_url_is_one_clear_error(tmp_path, hub_cache, network_attempts):
    with pytest.raises(UserError, match="cannot fetch module https://example.com/m.tar.gz"):
        feature_modules.resolve_module("https://example.com/m.tar.gz", str(tmp_path))


@pytest.mark.parametrize("handle", ["no_such_module", "mobilenet_v9", "hub://x"])
def test_unknown_handle_is_one_clear_error(tmp_path, handle, network_attempts):
    with pytest.raises(UserError, match="unknown module handle") as info:
        feature_modules.resolve_module(handle, str(tmp_path))
    assert "mobilenet_v2_100_224" in str(info.value) and "\n" not in str(info.value)
    assert network_attempts == []


def test_folder_without_saved_model_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no saved_model.pb"):
        feature_modules.resolve_module(str(tmp_path / "empty"), str(tmp_path))
    with pytest.raises(UserError, match="no such folder"):
        feature_modules.resolve_module("file://" + str(tmp_path / "missing"), str(tmp_path))


def test_image_size_comes_from_the_signature(tiny_module, tmp_path):
    assert feature_modules.image_size(tiny_module) == (32, 32)
    wide = str(tmp_path / "wide")
    save_feature_module(FeatureVectorModule(lambda x: tf.reduce_mean(x, [1, 2]), [], (48, 40)),
                        wide)
    assert feature_modules.image_size(wide) == (48, 40)


def test_image_size_of_a_module_without_fixed_size_is_tf_hub_default(tmp_path):
    open_size = str(tmp_path / "open")
    save_feature_module(
        FeatureVectorModule(lambda x: tf.reduce_mean(x, [1, 2]), [], (None, None)), open_size)
    assert feature_modules.image_size(open_size) == (224, 224)


def test_image_size_of_a_broken_module_is_an_error(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"\xff not a protobuf")
    with pytest.raises(UserError, match="not a SavedModel"):
        feature_modules.image_size(str(tmp_path))


def test_fingerprint_is_stable_and_follows_content(tiny_module, tmp_path):
    first = feature_modules.module_fingerprint(tiny_module)
    assert feature_modules.module_fingerprint(tiny_module) == first
    copy = tmp_path / "copy"
    shutil.copytree(tiny_module, copy)
    assert feature_modules.module_fingerprint(str(copy)) == first
    with open(copy / "variables" / "variables.index", "ab") as f:
        f.write(b"\0")
    assert feature_modules.module_fingerprint(str(copy)) != first


def test_module_loads_in_a_v1_graph_and_freezes(tiny_module):
    images = _images()
    expected = hub.load(tiny_module)(tf.constant(images)).numpy()
    with tf.Graph().as_default() as graph:
        module = hub.load(tiny_module)
        placeholder = tf.compat.v1.placeholder(tf.float32, [None, 32, 32, 3], name="Placeholder")
        output = tf.identity(module(placeholder), name="final_result")
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            np.testing.assert_allclose(sess.run(output, {placeholder: images}), expected,
                                       rtol=1e-5, atol=1e-6)
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), ["final_result"])
    assert not [n.name for n in frozen.node
                if n.op in ("VarHandleOp", "ReadVariableOp", "VariableV2")]
    with tf.Graph().as_default():
        tf.compat.v1.import_graph_def(frozen, name="")
        with tf.compat.v1.Session() as sess:
            result = sess.run("final_result:0", {"Placeholder:0": images})
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


def _tf1_hub_format_module(path):
    """A SavedModel shaped like a TF1 Hub format image module: no __call__, a `default`
    signature from `images` to `default`, as the original project's MobileNetV2 URL has."""
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        images = v1.placeholder(tf.float32, [None, 32, 32, 3], name="images")
        weights = v1.get_variable("w", [3, 4], initializer=v1.random_normal_initializer(seed=1))
        features = tf.matmul(tf.reduce_mean(images, [1, 2]), weights)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(sess, [], signature_def_map={
                "default": v1.saved_model.predict_signature_def({"images": images},
                                                               {"default": features})})
            builder.save()
            return sess.run(features, {images: np.full([1, 32, 32, 3], 0.5, np.float32)})


def test_a_tf1_hub_format_module_is_used_through_its_default_signature(tmp_path):
    from multilabel.export import formats
    from multilabel.labelling.frozen_graph import import_frozen_graph

    expected = _tf1_hub_format_module(tmp_path / "tf1")
    path = feature_modules.resolve_module(str(tmp_path / "tf1"), str(tmp_path / "MODEL"))
    assert feature_modules.image_size(path) == (32, 32)
    image = np.full([1, 32, 32, 3], 0.5, np.float32)
    np.testing.assert_allclose(feature_modules.load_module(path)(tf.constant(image)), expected,
                               rtol=1e-6)
    graph_def = formats.frozen_graph_def(path, 32, 32, np.eye(4, 2, dtype=np.float32),
                                        np.zeros(2, np.float32), "final_result")
    logits = expected @ np.eye(4, 2)
    with import_frozen_graph(graph_def, "<graph>").running() as run:
        np.testing.assert_allclose(run(image), 1 / (1 + np.exp(-logits)), rtol=1e-5)
    formats.write_saved_model(str(tmp_path / "saved"), path, 32, 32,
                             np.eye(4, 2, dtype=np.float32), np.zeros(2, np.float32))
    served = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    np.testing.assert_allclose(served(image=tf.constant(image))["prediction"],
                               1 / (1 + np.exp(-logits)), rtol=1e-5)
