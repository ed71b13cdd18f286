"""Several modules at once: two tiny modules of different input sizes used as one.

The small module (32 x 32) and the large one (48 x 48) are combined: images are decoded
at 48 x 48 and the small module sees them resized inside TensorFlow, in training and in
the exported graph alike. retrain.py and label_image.py run end to end on the set.
"""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import label_image
import retrain
from multilabel.features import bottlenecks, feature_modules, input_pipeline, module_set
from multilabel.base.errors import UserError
from multilabel.labelling.frozen_graph import load_frozen_graph
from multilabel.data.images import load_image
from tests.test_retrain import make_dataset, retrain_flags
from tests.tiny_module import FEATURE_DIM, make_tiny_module

SMALL, LARGE = 32, 48


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    folder = tmp_path_factory.mktemp("set_modules")
    return (make_tiny_module(str(folder / "small"), size=SMALL),
            make_tiny_module(str(folder / "large"), size=LARGE))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = make_dataset(tmp_path_factory.mktemp("set_images") / "data", per_set=1)
    return sorted(str(p) for p in (folder / "images").iterdir())


def _load(modules, tmp_path, kind="tensorflow"):
    return module_set.load_module_set(modules, str(tmp_path / "model"),
                                      str(tmp_path / "bottlenecks"), kind)


def test_the_set_takes_the_largest_size_and_concatenates_the_features(modules, tmp_path):
    loaded = _load(modules, tmp_path)
    assert (loaded.height, loaded.width, loaded.dim) == (LARGE, LARGE, 2 * FEATURE_DIM)
    assert feature_modules.image_size(loaded.path) == (LARGE, LARGE)
    assert [(m.height, m.width) for m in loaded.members] == [(SMALL, SMALL), (LARGE, LARGE)]


def test_cache_keys_name_the_resize_chain(modules, tmp_path):
    small, large = _load(modules, tmp_path).members
    small_alone, large_alone = (_load((m,), tmp_path).members[0] for m in modules)
    fingerprint = feature_modules.module_fingerprint(modules[0])
    # At its own size a member shares the module's own cache; resized, it must not.
    assert large.key == large_alone.key
    assert small_alone.key == bottlenecks.module_key(fingerprint, SMALL, SMALL)
    assert len({small.key, small_alone.key, large.key}) == 3


def test_bottlenecks_come_from_the_image_decoded_at_the_largest_size_then_resized(
        modules, images, tmp_path):
    loaded = _load(modules, tmp_path)
    vectors = module_set.set_bottlenecks(images, loaded, str(tmp_path / "bottlenecks"), 4)
    small = feature_modules.load_module(modules[0])
    large = feature_modules.load_module(modules[1])
    decoded = np.stack([load_image(p, LARGE, LARGE) for p in images])
    expected_small = small(tf.image.resize(decoded, (SMALL, SMALL))).numpy()
    np.testing.assert_allclose(vectors[:, :FEATURE_DIM], expected_small, atol=1e-6)
    np.testing.assert_allclose(vectors[:, FEATURE_DIM:], large(decoded).numpy(), atol=1e-6)
    # Decoding straight at 32 x 32 gives other pixels, hence other vectors.
    alone = small(np.stack([load_image(p, SMALL, SMALL) for p in images])).numpy()
    assert np.abs(alone - expected_small).max() > 1e-3


def test_each_image_is_decoded_once_for_all_modules(modules, images, tmp_path, monkeypatch):
    decoded = []
    real = input_pipeline.load_pixels
    monkeypatch.setattr(input_pipeline, "load_pixels",
                        lambda path, h, w: decoded.append((h, w)) or real(path, h, w))
    loaded = _load(modules, tmp_path)
    first = module_set.set_bottlenecks(images, loaded, str(tmp_path / "bottlenecks"), 4)
    assert decoded == [(LARGE, LARGE)] * len(images)
    # Only the resized member lacks vectors now: still one decoding per image.
    shutil.rmtree(tmp_path / "bottlenecks" / loaded.members[0].key)
    decoded.clear()
    again = module_set.set_bottlenecks(images, loaded, str(tmp_path / "bottlenecks"), 4)
    assert decoded == [(LARGE, LARGE)] * len(images)
    np.testing.assert_array_equal(first, again)
    decoded.clear()
    module_set.set_bottlenecks(images, loaded, str(tmp_path / "bottlenecks"), 4)
    assert decoded == []


def test_the_saved_set_computes_what_the_engines_compute(modules, images, tmp_path):
    loaded = _load(modules, tmp_path, kind="auto")
    batch = np.stack([load_image(p, LARGE, LARGE) for p in images])
    saved = feature_modules.load_module(loaded.path)(tf.constant(batch)).numpy()
    np.testing.assert_allclose(loaded.engine(batch), saved, rtol=1e-4, atol=1e-5)


def test_one_module_under_two_handles_is_one_clear_error(modules, tmp_path):
    copy = shutil.copytree(modules[0], tmp_path / "copy")
    with pytest.raises(UserError, match="names one module twice") as info:
        _load((modules[0], str(copy)), tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value, message", [
    ("a,,b", "empty module handle in 'a,,b'"),
    ("a, ", "empty module handle in 'a, '"),
    ("a,b,a", "module 'a' given twice in 'a,b,a'"),
])
def test_bad_module_lists_are_refused_before_any_work(tmp_path, value, message, capsys):
    with pytest.raises(SystemExit) as info:
        retrain.main(retrain_flags(tmp_path, value))
    assert info.value.code == 2
    *usage, error = capsys.readouterr().err.splitlines()
    assert error.endswith(f": error: argument --tfhub_module: {message}")
    assert all(line.startswith(("usage:", " ")) for line in usage)  # argparse's usage only


@pytest.fixture(scope="module")
def trained(tmp_path_factory, modules):
    """retrain.py on the set, with every export, shared by the tests that read its outputs."""
    tmp_path = tmp_path_factory.mktemp("set_run")
    make_dataset(tmp_path / "data")
    assert retrain.main(retrain_flags(
        tmp_path, ",".join(modules), "--saved_model_dir", str(tmp_path / "saved"),
        "--tflite_output_file", str(tmp_path / "model.tflite"))) == 0
    return tmp_path


def test_the_exported_graph_has_one_input_at_the_largest_size(trained):
    out = trained / "details"
    report = json.loads((out / "metrics.json").read_text())
    assert report["export_check_max_difference"] < 1e-5
    assert report["test"]["mean_average_precision"] > 0.95
    # The head trained on feature blocks scaled to one mean norm, folded into its weights.
    scales = report["feature_scales"]
    assert len(scales) == 2 and all(s > 0 for s in scales.values())
    graph = load_frozen_graph(str(out / "output_graph.pb"))
    assert (graph.height, graph.width, graph.num_classes) == (LARGE, LARGE, 3)
    placeholders = [op for op in graph.graph.get_operations() if op.type == "Placeholder"]
    assert [op.name for op in placeholders] == ["Placeholder"]


def test_label_image_reproduces_the_probabilities_retrain_reported(trained, capsys):
    out = trained / "details"
    predictions = [json.loads(line) for line in
                   (out / "test_predictions.jsonl").read_text().splitlines()]
    capsys.readouterr()
    assert label_image.main(["--graph", str(out / "output_graph.pb"), "--output_format", "json",
                             *[a for p in predictions for a in ("--image", p["image"])]]) == 0
    labelled = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(labelled) == len(predictions)
    for mine, theirs in zip(predictions, labelled):
        np.testing.assert_allclose(theirs["probabilities"], mine["probabilities"], atol=1e-5)
        assert theirs["predicted"] == mine["predicted"]


def test_saved_model_and_tflite_match_the_frozen_graph(trained):
    out = trained / "details"
    predictions = [json.loads(line) for line in
                   (out / "test_predictions.jsonl").read_text().splitlines()][:4]
    batch = np.stack([load_image(p["image"], LARGE, LARGE) for p in predictions])
    with load_frozen_graph(str(out / "output_graph.pb")).running() as run:
        frozen = run(batch)
    np.testing.assert_allclose(frozen, [p["probabilities"] for p in predictions], atol=1e-5)
    saved = tf.saved_model.load(str(trained / "saved")).signatures["serving_default"]
    np.testing.assert_allclose(saved(image=tf.constant(batch))["prediction"], frozen, atol=1e-5)
    interpreter = Interpreter(model_path=str(trained / "model.tflite"))
    runner = interpreter.get_signature_runner("serving_default")
    np.testing.assert_allclose(runner(image=batch)["prediction"], frozen, atol=1e-4)


def test_a_second_run_reuses_every_members_bottlenecks(trained, modules, caplog):
    caplog.set_level("INFO")
    assert retrain.main(retrain_flags(trained, ",".join(modules))) == 0
    assert caplog.text.count("All 70 bottlenecks cached") == 2
    assert "decoded once" not in caplog.text


def test_distortions_feed_the_set_at_its_size(tmp_path, modules):
    make_dataset(tmp_path / "data", per_set=4)
    assert retrain.main(retrain_flags(
        tmp_path, ",".join(modules), "--how_many_training_steps", "20",
        "--eval_step_interval", "10", "--train_batch_size", "8", "--flip_left_right",
        "--random_crop", "10")) == 0
    report = json.loads((tmp_path / "details" / "metrics.json").read_text())
    assert report["module"] == ",".join(modules)
    assert report["export_check_max_difference"] < 1e-5
