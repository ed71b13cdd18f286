"""Class activation maps read out of exported frozen graphs: exact where the features
are a mean over a spatial map, refused (never guessed) where they are not."""

import numpy as np
import pytest
import tensorflow as tf

from multilabel.export import formats
from multilabel.features import module_set
from multilabel.features.backbones.saved_feature_module import (FeatureVectorModule,
                                                                save_feature_module)
from multilabel.labelling.class_activation import Explainer, NotExplainable
from multilabel.report import heatmaps, page
from tests.report_html import assert_self_contained, decode_data_uri


def make_spatial_module(path, size=32, channels=8, seed=0):
    """A convolution, then the mean over positions: the shape of every real module."""
    kernel = tf.Variable(tf.random.Generator.from_seed(seed).normal([3, 3, 3, channels]),
                         name="conv/kernel")

    def features(images):
        spatial = tf.nn.relu(tf.nn.conv2d(images, kernel, 2, "SAME"))
        return tf.reduce_mean(spatial, axis=[1, 2])

    save_feature_module(FeatureVectorModule(features, [kernel], (size, size)), str(path))
    return str(path)


def _graph(module_path, size, dim, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(dim, classes)).astype(np.float32)
    biases = rng.normal(size=classes).astype(np.float32)
    return formats.frozen_graph_def(module_path, size, size, weights, biases, "final_result")


def _logits(probs):
    return np.log(probs) - np.log1p(-probs)


def test_a_single_module_s_maps_average_to_the_logits(tmp_path):
    graph_def = _graph(make_spatial_module(tmp_path / "m"), 32, 8)
    explainer = Explainer(graph_def, "final_result")
    images = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    probs, maps = explainer.explain(images)
    assert len(maps) == 1 and maps[0].shape == (4, 16, 16, 3)
    assert explainer.member_count == 1
    np.testing.assert_allclose(maps[0].mean(axis=(1, 2)) + explainer.biases,
                               _logits(probs.astype(np.float64)), atol=1e-4)
    # The map is the image's: a different image gives a different map.
    assert not np.allclose(maps[0][0], maps[0][1])


def test_a_module_set_gives_each_member_s_map_weighted_by_its_rows(tmp_path):
    members = [make_spatial_module(tmp_path / "a", 32, 8, seed=2),
               make_spatial_module(tmp_path / "b", 24, 4, seed=3)]
    combined = module_set.load_module_set(members, str(tmp_path / "model"),
                                          str(tmp_path / "cache"), "tensorflow")
    graph_def = _graph(combined.path, combined.height, combined.dim)
    explainer = Explainer(graph_def, "final_result")
    images = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    probs, maps = explainer.explain(images)
    assert explainer.member_count == 2
    assert [m.shape for m in maps] == [(2, 16, 16, 3), (2, 12, 12, 3)]
    np.testing.assert_allclose(sum(m.mean(axis=(1, 2)) for m in maps) + explainer.biases,
                               _logits(probs.astype(np.float64)), atol=1e-4)


def test_a_module_that_exposes_only_pooled_features_is_refused(tiny_module):
    with pytest.raises(NotExplainable, match="pooled vector"):
        Explainer(_graph(tiny_module, 32, 24), "final_result")


def test_the_heat_map_section_draws_every_map_or_says_why_not(tmp_path):
    names = ("sea", "sunset")
    images = np.random.default_rng(2).random((2, 32, 32, 3), dtype=np.float32)
    maps = (np.random.default_rng(3).normal(size=(2, 4, 4, 2)),)
    explained = heatmaps.Explained(("a/1.jpg", "b/2.jpg"), np.array([[1, 0], [1, 1]]),
                                   np.array([[0.2, 0.9], [0.8, 0.7]]), np.array([0.5, 0.5]),
                                   False, images, maps, ("m",), 1)
    html = heatmaps.section(names, explained, page._data_uri)
    shown = assert_self_contained(html)
    # Image 1: photo, sea missed, sunset predicted falsely; image 2: photo and two right.
    assert len(shown.images["heatmaps"]) == 6
    assert all(decode_data_uri(src).size == (128, 128) for src in shown.images["heatmaps"])
    assert "true, missed" in html and "predicted, not true" in html
    refused = heatmaps.section(names, heatmaps.Explained(reason="only a pooled vector"),
                               page._data_uri)
    assert "only a pooled vector" in refused and "<img" not in refused
    assert heatmaps.section(names, None, page._data_uri) == ""


def test_an_overlay_is_red_where_the_evidence_is_for_the_class():
    image = np.full((32, 32, 3), 0.5, np.float32)
    cam = np.zeros((2, 2))
    cam[0, 0], cam[1, 1] = 3.0, -3.0
    pixels = heatmaps.overlay_map(image, cam, size=64).astype(int)
    top_left, bottom_right = pixels[5, 5], pixels[58, 58]
    assert top_left[0] > top_left[2] + 25 and bottom_right[2] > bottom_right[0] + 25
    assert abs(pixels[5, 58] - 127).max() < 8  # no evidence either way: the photo


def test_classifier_explain_gives_each_class_its_map_from_the_graph(tmp_path):
    from multilabel.labelling.classifier import Classifier

    graph_def = _graph(make_spatial_module(tmp_path / "m"), 32, 8)
    (tmp_path / "output_graph.pb").write_bytes(graph_def.SerializeToString())
    (tmp_path / "output_labels.txt").write_text("a\nb\nc\n")
    (tmp_path / "output_thresholds.txt").write_text("0.5\n0.5\n0.5\n")
    classifier = Classifier.load(tmp_path, engine="tf")
    image = np.random.default_rng(4).random((32, 32, 3), dtype=np.float32)
    explanation = classifier.explain(image)
    predicted = classifier.predict(image)[0]
    assert explanation.labels == predicted.labels
    assert explanation.probabilities == pytest.approx(predicted.probabilities, abs=1e-6)
    assert set(explanation.maps) == {"a", "b", "c"}
    assert [m.shape for m in explanation.maps["a"]] == [(16, 16)]
    biases = Explainer(graph_def, "final_result").biases
    logits = [explanation.maps[name][0].mean() + b for name, b in zip("abc", biases)]
    np.testing.assert_allclose(1 / (1 + np.exp(-np.array(logits))),
                               list(predicted.probabilities.values()), atol=1e-5)


def test_classifier_explain_says_why_it_cannot(trained_tiny_folder):
    from multilabel.labelling.classifier import Classifier

    with pytest.raises(NotExplainable, match="pooled vector"):
        Classifier.load(trained_tiny_folder).explain(np.zeros((32, 32, 3), np.float32))


@pytest.fixture
def trained_tiny_folder(tmp_path, tiny_module):
    graph_def = _graph(tiny_module, 32, 24)
    (tmp_path / "output_graph.pb").write_bytes(graph_def.SerializeToString())
    (tmp_path / "output_labels.txt").write_text("a\nb\nc\n")
    return tmp_path
