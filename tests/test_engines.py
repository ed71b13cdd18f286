"""Bottleneck engines: TFLite matches TensorFlow, its conversion is kept, fallbacks work."""

import concurrent.futures
import logging
import os

import numpy as np
import pytest

from multilabel.features import engines, feature_modules, tflite_engine
from multilabel.base.errors import UserError
from multilabel.data.images import load_image

SCENES = os.path.join(os.path.dirname(__file__), "..", "DATASET", "images")


def _images(n, size=32):
    """Random images plus solid and half-split ones: cases that differ in every feature."""
    rng = np.random.default_rng(1)
    images = rng.random((n, size, size, 3), dtype=np.float32)
    images[0] = 0.0
    images[1] = [0.9, 0.2, 0.4]
    images[2, :, : size // 2] = 1.0
    return images


def test_relative_difference_is_per_row_and_relative():
    reference = np.array([[3.0, 4.0], [0.0, 10.0]])
    assert engines.relative_difference(reference, reference) == 0.0
    # Row 0 is off by 0.5 on a norm of 5; row 1 by 0.5 on a norm of 10.
    assert engines.relative_difference([[3.0, 4.5], [0.0, 10.5]], reference) == pytest.approx(0.1)
    assert engines.relative_difference([[3.0, 4.0]], reference) == float("inf")


def test_tflite_matches_tensorflow_on_the_tiny_module(tiny_module, tmp_path):
    engine = engines.make_engine("tflite", tiny_module, str(tmp_path))
    assert isinstance(engine, engines.TFLiteEngine)
    images = _images(5)
    reference = engines.TensorFlowEngine(tiny_module)(images)
    assert engines.relative_difference(engine(images), reference) < engines.TOLERANCE


def test_batches_of_any_size_give_the_same_vectors(tiny_module, tmp_path):
    engine = engines.make_engine("tflite", tiny_module, str(tmp_path))
    images = _images(5)
    whole = engine(images)
    # The interpreter is resized between calls of different batch sizes.
    parts = np.concatenate([engine(images[:3]), engine(images[3:4]), engine(images[4:])])
    np.testing.assert_allclose(parts, whole, rtol=1e-6, atol=1e-7)


def test_several_threads_calling_at_once_get_their_own_vectors(tiny_module, tmp_path):
    # The bottleneck pipeline calls the engine from one worker per core; each call must
    # come back with the vectors of its own batch, however the interpreters are shared.
    engines.make_engine("tflite", tiny_module, str(tmp_path))
    content = (tmp_path / engines.TFLITE_FILE).read_bytes()
    engine = engines.TFLiteEngine(content, interpreters=3, invoke_images=2)
    images = _images(24)
    alone = engines.TFLiteEngine(content, interpreters=1)(images)
    batches = [images[i:i + 5] for i in range(0, len(images), 5)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = np.concatenate(list(pool.map(engine, batches * 3)))
    np.testing.assert_array_equal(together, np.concatenate([alone] * 3))


def test_a_split_batch_runs_on_every_interpreter_and_gives_the_same_vectors(
        tiny_module, tmp_path, monkeypatch):
    # Beam calls its shared engine one batch at a time: the batch is spread over every
    # interpreter, in parts, and comes back in order.
    engines.make_engine("tflite", tiny_module, str(tmp_path))
    content = (tmp_path / engines.TFLITE_FILE).read_bytes()
    images = _images(7)
    alone = engines.TFLiteEngine(content, interpreters=1)(images)
    used = set()
    run = tflite_engine._Interpreter.__call__
    monkeypatch.setattr(tflite_engine._Interpreter, "__call__",
                        lambda self, batch: used.add(id(self)) or run(self, batch))
    split = engines.TFLiteEngine(content, interpreters=3, split_batches=True)
    np.testing.assert_array_equal(split(images), alone)
    assert len(used) == 3
    used.clear()
    unsplit = engines.TFLiteEngine(content, interpreters=3)
    np.testing.assert_array_equal(unsplit(images), alone)
    assert len(used) == 1


def test_the_conversion_is_kept_and_reused_without_tensorflow(tiny_module, tmp_path,
                                                              monkeypatch):
    first = engines.make_engine("auto", tiny_module, str(tmp_path))
    assert first.name == "tflite"
    kept = tmp_path / engines.TFLITE_FILE
    assert kept.is_file() and kept.stat().st_size > 0

    def fail(*args):
        raise AssertionError("should not be called for a kept conversion")

    monkeypatch.setattr(engines, "convert", fail)
    monkeypatch.setattr(engines, "TensorFlowEngine", fail)
    again = engines.make_engine("auto", tiny_module, str(tmp_path))
    assert again.name == "tflite"
    images = _images(3)
    np.testing.assert_array_equal(again(images), first(images))


def test_auto_falls_back_to_tensorflow_when_conversion_fails(tiny_module, tmp_path, monkeypatch,
                                                             caplog):
    def broken(module_path):
        raise RuntimeError("converter\nexploded")

    monkeypatch.setattr(engines, "convert", broken)
    with caplog.at_level(logging.WARNING):
        engine = engines.make_engine("auto", tiny_module, str(tmp_path))
    assert engine.name == "tensorflow"
    assert "Cannot convert the module to TFLite (converter exploded); using TensorFlow" \
        in caplog.text
    assert not (tmp_path / engines.TFLITE_FILE).exists()

    with pytest.raises(UserError, match="cannot convert the module to TFLite: converter"):
        engines.make_engine("tflite", tiny_module, str(tmp_path))


def test_auto_falls_back_to_tensorflow_when_the_vectors_differ(tiny_module, tmp_path,
                                                               monkeypatch, caplog):
    exact = engines.TFLiteEngine.__call__
    # 1e-3 relative: ten times more than allowed.
    monkeypatch.setattr(engines.TFLiteEngine, "__call__",
                        lambda self, images: exact(self, images) * 1.001)
    with caplog.at_level(logging.WARNING):
        engine = engines.make_engine("auto", tiny_module, str(tmp_path))
    assert engine.name == "tensorflow"
    assert "differs from TensorFlow by 0.001 (relative)" in caplog.text
    assert "using TensorFlow" in caplog.text
    assert not (tmp_path / engines.TFLITE_FILE).exists()

    # Asked for by name, TFLite is used anyway, with the warning, and not kept.
    assert engines.make_engine("tflite", tiny_module, str(tmp_path)).name == "tflite"
    assert "using it as asked" in caplog.text
    assert not (tmp_path / engines.TFLITE_FILE).exists()


@pytest.mark.slow
def test_tflite_matches_tensorflow_on_real_images_with_mobilenet_v2(tmp_path):
    """Builds the default module (a few seconds when pip's cache holds its wheel)."""
    module = feature_modules.resolve_module("mobilenet_v2_100_224", str(tmp_path / "model"))
    size = feature_modules.image_size(module)
    images = np.stack([load_image(os.path.join(SCENES, f"{i}.jpg"), *size)
                       for i in (1, 500, 1000, 1500, 2000)])
    engine = engines.make_engine("tflite", module, str(tmp_path / "cache"))
    assert engine.name == "tflite"
    difference = engines.relative_difference(engine(images),
                                             engines.TensorFlowEngine(module)(images))
    assert difference < engines.TOLERANCE
