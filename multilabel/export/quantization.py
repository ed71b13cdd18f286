"""Smaller TFLite exports beside the float32 one: float16, dynamic-range and int8 copies,
each with thresholds that fit it, each measured against float before it is written.

`--quantize float16,dynamic,int8` (any of them) makes each from the run's SavedModel by
the project's one conversion (`features.engines.convert`). What goes wrong when people
quantize is that nobody measures it: accuracy that collapses after int8 conversion,
outputs that drift from the float model by an amount nobody states, and, for a
multi-label model, per-class thresholds chosen on the float model's probabilities that
no longer cut the copy's where they cut the original's. So each copy:

- is calibrated (int8) and gets its own thresholds on REPRESENTATIVE_IMAGES training
  images, never on test images: per class, the threshold at which its decisions agree
  best with the float model's at its own (`evaluation.agreement`);
- is measured on the test part against float: largest probability difference, mAP,
  label accuracy and exact match with its own thresholds (and with float's, to show what
  the fitted thresholds change), size, speed;
- is written only where it loses at most MAP_TOLERANCE mAP and LABEL_ACCURACY_TOLERANCE
  label accuracy to float on the test part; otherwise it is left out with a warning that
  gives the numbers, as the float export is left out where it differs from the graph.

Every client feeds every copy the same way: int8 keeps float input and output, so the
metadata (normalization, labels, its thresholds) is the float model's but for the
thresholds.
"""

import dataclasses
import logging
import time

import numpy as np

from multilabel.base.host import cores
from multilabel.data.images import load_image
from multilabel.evaluation import agreement, metrics
from multilabel.export import tflite_metadata
from multilabel.features import engines

logger = logging.getLogger(__name__)

FLOAT32 = engines.FLOAT32
# Training images that calibrate int8's activation ranges and fit each copy's thresholds.
# TensorFlow's guide asks for "around 100-500"; on MobileNetV2 and the scene set, int8's
# test mAP was 0.9211, 0.9191 and 0.9190 with 100, 200 and 300 (docs/mobile.md): more
# does not buy accuracy, and each calibrating image costs one float run of the model in
# the converter. 200 rather than 100 for the thresholds, fitted per class on them.
REPRESENTATIVE_IMAGES = 200
REPRESENTATIVE_SEED = 0
# What a copy may lose to float on the test part and still be written: measures move by
# about 0.015 between splits of 400 test images, so a loss under 0.005 is under noise.
MAP_TOLERANCE = 0.005
LABEL_ACCURACY_TOLERANCE = 0.005


@dataclasses.dataclass(frozen=True)
class Export:
    """One TFLite export: its name (float32 or a quantization), its model bytes with
    metadata, its thresholds, and its measures against float on the test part."""

    name: str
    content: bytes
    thresholds: np.ndarray
    measures: dict


@dataclasses.dataclass(frozen=True)
class Images:
    """Images the exports are run on, with the float model's probabilities of them
    (from cached bottlenecks: what training computed) and, for test images, labels."""

    pixels: np.ndarray  # [N, H, W, 3] float32 in [0, 1]
    float_probs: np.ndarray  # [N, C]
    labels: np.ndarray | None = None  # [N, C] 0/1


def representative_indices(count, limit=REPRESENTATIVE_IMAGES, seed=REPRESENTATIVE_SEED):
    """Which of `count` training images calibrate and fit the copies: `limit` of them
    (all where fewer), chosen at random by a fixed seed, so that one run's copies are
    the same on a re-run."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, limit, replace=False))


def load_images(paths, height, width):
    return np.stack([load_image(p, height, width) for p in paths]).astype(np.float32)


def convert(saved_model_path, names, representative):
    """{name: TFLite bytes} of each quantization in `names`, from the SavedModel;
    `representative` (Images) calibrates int8. A conversion that fails is a warning and
    that copy is left out: the float export does not depend on it."""
    converted = {}
    for name in names:
        start = time.perf_counter()
        try:
            converted[name] = engines.convert(saved_model_path, name, representative.pixels)
        except Exception as e:  # noqa: BLE001 - the converter raises many unrelated types
            logger.warning("No %s TFLite model: conversion failed (%s)", name,
                           " ".join(str(e).split())[:300])
            continue
        logger.info("Converted the %s TFLite model in %.1f s", name, time.perf_counter() - start)
    return converted


def measured_exports(float_content, converted, model_info, thresholds, never_empty,
                     representative, test):
    """The float32 export and each copy of `converted` that keeps float's accuracy, as
    `Export`s with metadata and measures; a copy that loses more than the tolerances is
    left out with a warning. `float_content` already carries its metadata; `thresholds`
    are float's, `representative` and `test` are `Images`."""
    float_export = Export(FLOAT32, float_content, np.asarray(thresholds, np.float64),
                          _measures(float_content, thresholds, thresholds, never_empty, test))
    exports = [float_export]
    for name, content in converted.items():
        fitted = agreement.agreeing_thresholds(
            _run(content, representative.pixels), representative.float_probs, thresholds)
        if model_info is not None:
            content = tflite_metadata.with_metadata(content, dataclasses.replace(
                model_info, thresholds=tuple(float(t) for t in fitted)))
        export = Export(name, content, fitted,
                        _measures(content, fitted, thresholds, never_empty, test))
        loss = _losses(float_export.measures, export.measures)
        if loss["mean_average_precision"] > MAP_TOLERANCE or \
                loss["label_accuracy"] > LABEL_ACCURACY_TOLERANCE:
            logger.warning(
                "No %s TFLite model: on %d test images it loses %.4f mAP (%.4f against "
                "float's %.4f) and %.4f label accuracy (%.4f against %.4f), more than the "
                "%g and %g allowed", name, len(test.pixels), loss["mean_average_precision"],
                export.measures["mean_average_precision"],
                float_export.measures["mean_average_precision"], loss["label_accuracy"],
                export.measures["label_accuracy"], float_export.measures["label_accuracy"],
                MAP_TOLERANCE, LABEL_ACCURACY_TOLERANCE)
            export.measures["left_out"] = True
        exports.append(export)
    for export in exports:
        logger.info("TFLite %-8s %s", export.name, format_measures(export.measures))
    return exports


def format_measures(m):
    """One line of an export's measures, as the log and the bench print them."""
    return (f"{m['size_bytes'] / 1e6:.1f} MB, max difference from float "
            f"{m['max_difference']:.4f}, mAP {m['mean_average_precision']:.4f}, label accuracy "
            f"{m['label_accuracy']:.4f}, exact match {m['exact_match']:.4f}; one photo "
            f"{m['one_photo_seconds'] * 1000:.0f} ms, {m['images']} photos "
            f"{m['images_seconds']:.2f} s" + ("  LEFT OUT" if m.get("left_out") else ""))


def _losses(reference, measures):
    return {key: reference[key] - measures[key]
            for key in ("mean_average_precision", "label_accuracy")}


def _run(content, pixels):
    return engines.TFLiteEngine(content)(pixels)


def _measures(content, thresholds, float_thresholds, never_empty, test):
    """An export's measures on the test images: against the labels with its own
    thresholds (and with float's), against float's probabilities, and its speed: one
    photo (a one-interpreter engine built and run once, as label_image.py does for one
    photo, without the process start) and every test photo (one interpreter per core)."""
    start = time.perf_counter()
    engines.TFLiteEngine(content, interpreters=1)(test.pixels[:1])
    one_photo = time.perf_counter() - start
    engine = engines.TFLiteEngine(content, interpreters=cores(), split_batches=True)
    start = time.perf_counter()
    probs = engine(test.pixels)
    seconds = time.perf_counter() - start
    own = metrics.evaluate(test.labels, probs, thresholds, never_empty)
    at_float = metrics.evaluate(test.labels, probs, float_thresholds, never_empty)
    return {
        "size_bytes": len(content),
        "max_difference": float(np.abs(probs - test.float_probs).max()),
        "mean_average_precision": own["mean_average_precision"],
        "label_accuracy": own["label_accuracy"],
        "exact_match": own["exact_match"],
        "thresholds": [float(t) for t in thresholds],
        "with_float_thresholds": {"label_accuracy": at_float["label_accuracy"],
                                  "exact_match": at_float["exact_match"]},
        "one_photo_seconds": one_photo,
        "images": len(test.pixels),
        "images_seconds": seconds,
    }
