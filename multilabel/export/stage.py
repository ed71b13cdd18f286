"""The export stage of a run: the trained classifier and its companions, written and checked.

A run ends by writing its frozen graph, its TFLite model, class names, thresholds and
their rule, measures and test predictions, and optionally a SavedModel. Before anything
is written, the frozen graph is run on a few test images in this process, by the runner
label_image.py runs it with (`labelling.frozen_graph`): it must give the probabilities
training computed from cached bottlenecks, or the graph and the training code have
drifted apart (a preprocessing change, a wrong fold of the feature scales). The TFLite
model is checked against the frozen graph the same way.

Everything is computed first and written last, file after file, each registered in the
run's `run_folder.RunSet`, whose manifest the run writes last (after the label issues
and the report page): readers refuse a set that a kill left mixed.
"""

import dataclasses
import json
import logging
import os
import tempfile

import numpy as np

from multilabel.base import atomic
from multilabel.data import listfile
from multilabel.data.images import load_image
from multilabel.evaluation import thresholds as thresholds_lib
from multilabel.export import formats, tflite_metadata
from multilabel.features import engines
from multilabel.labelling import label_report, run_folder
from multilabel.labelling.frozen_graph import import_frozen_graph

logger = logging.getLogger(__name__)

# How many test images the exported graph is run on to prove that it reproduces the
# probabilities computed from cached bottlenecks, and how close it must come. The graph
# computes exactly what training did, so only float rounding may differ.
CHECK_IMAGES = 8
GRAPH_TOLERANCE = 1e-5
# TFLite's kernels (XNNPACK) sum in another order than TensorFlow's: a looser bound.
TFLITE_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """What is exported: a feature module (a SavedModel folder) and the trained layer."""

    module_path: str
    height: int
    width: int
    weights: np.ndarray
    biases: np.ndarray
    final_tensor_name: str

    def graph_def(self):
        return formats.frozen_graph_def(self.module_path, self.height, self.width,
                                        self.weights, self.biases, self.final_tensor_name)


@dataclasses.dataclass(frozen=True)
class Results:
    """What the run measured, written beside the classifier."""

    class_names: tuple
    thresholds: np.ndarray
    test_paths: tuple
    test_probs: np.ndarray  # [len(test_paths), num_classes]
    report: dict  # metrics.json's content; the export check's difference is added
    model_info: tflite_metadata.ModelInfo = None  # the TFLite model's metadata; None: none
    never_empty: bool = False  # the top-margin rule, recorded beside the thresholds


def write_outputs(options, trained, results, tflite_required=False):
    """Check the `TrainedModel`, then write it and its companions where `options` (a
    resolved TrainOptions) say, as one set: every file is made first, then they are
    written one after another. Returns the `run_folder.RunSet` holding them, whose
    manifest makes them one run's once the caller has added its own outputs and written
    it (a kill before that leaves a set readers refuse).

    The TFLite model, which label_image.py prefers to the graph, is written only where it
    matches the graph within TFLITE_TOLERANCE, and a conversion that fails is a warning;
    unless `tflite_required` (the user named the file): then it is written regardless, or
    the run fails."""
    graph_def = trained.graph_def()
    graph = import_frozen_graph(graph_def, options.output_graph,
                                output_layer=trained.final_tensor_name,
                                height=trained.height, width=trained.width)
    if len(results.test_paths):
        results.report["export_check_max_difference"] = _check_graph(graph, results)
    tflite = _saved_model_and_tflite(options, trained, graph, results.model_info,
                                     tflite_required)
    run_id = results.report["run_id"] = run_folder.new_run_id()
    files = {"graph": options.output_graph, "labels": options.output_labels,
             "thresholds": options.output_thresholds,
             "rule": thresholds_lib.rule_path(options.output_thresholds),
             "metrics": options.metrics_file}
    formats.write_graph_def(options.output_graph, graph_def)
    if tflite is not None:
        atomic.write_bytes(options.tflite_output_file, tflite)
        files["tflite"] = options.tflite_output_file
    listfile.write_class_names(options.output_labels, results.class_names)
    thresholds_lib.write_thresholds(options.output_thresholds, results.thresholds)
    thresholds_lib.write_rule(options.output_thresholds, results.never_empty)
    atomic.write_text(options.metrics_file, json.dumps(results.report, indent=2) + "\n")
    if len(results.test_paths):
        _write_predictions(options.test_predictions, results)
        files["test_predictions"] = options.test_predictions
    logger.info("Wrote %s as run %s", ", ".join(files.values()), run_id)
    run_set = run_folder.RunSet(os.path.dirname(os.path.abspath(options.output_graph)), run_id)
    for role, path in files.items():
        run_set.add(role, path)
    return run_set


def intermediate_graph_writer(options, trained):
    """`on_eval(step, weights, biases)` for training that writes a frozen graph every
    `intermediate_store_frequency` steps, or None when that is 0."""
    if not options.intermediate_store_frequency:
        return None

    def write(step, weights, biases):
        if step % options.intermediate_store_frequency == 0:
            path = os.path.join(options.intermediate_output_graphs_dir, f"intermediate_{step}.pb")
            at_step = dataclasses.replace(trained, weights=weights, biases=biases)
            formats.write_graph_def(path, at_step.graph_def())

    return write


def _check_graph(graph, results):
    """Run the frozen graph (a `FrozenGraph`) on a few test images; it must match the
    training process."""
    n = min(CHECK_IMAGES, len(results.test_paths))
    images = np.stack([load_image(p, graph.height, graph.width)
                       for p in results.test_paths[:n]])
    with graph.running() as run:
        probs = run(images)
    difference = float(np.abs(probs - results.test_probs[:n]).max())
    log = logger.info if difference < GRAPH_TOLERANCE else logger.warning
    log("The exported graph reproduces the test probabilities of %d images within %.2g", n,
        difference)
    return difference


def _write_predictions(path, results):
    """The test images' probabilities, in label_image.py's JSON lines, for comparison."""
    report = label_report.Report("json", tuple(results.class_names),
                                 np.asarray(results.thresholds),
                                 never_empty=results.never_empty)
    atomic.write_text(path, "".join(report.record(image, row)
                                    for image, row in zip(results.test_paths, results.test_probs)))


def _saved_model_and_tflite(options, trained, graph, model_info, required):
    """Write the SavedModel where asked for; return the TFLite model converted from it,
    with TFLite metadata (so that MediaPipe runs it as it is), checked against the frozen
    graph (None when there is none to write)."""
    if not (options.saved_model_dir or options.tflite_output_file):
        return None
    with tempfile.TemporaryDirectory() as scratch:
        saved = options.saved_model_dir or os.path.join(scratch, "saved_model")
        formats.write_saved_model(saved, trained.module_path, trained.height, trained.width,
                                  trained.weights, trained.biases)
        if not options.tflite_output_file:
            return None
        try:
            content = engines.convert(saved)
        except Exception as e:  # noqa: BLE001 - the converter raises many unrelated types
            if required:
                raise
            logger.warning("No TFLite model: conversion failed (%s); label_image.py will run "
                           "the frozen graph", " ".join(str(e).split())[:300])
            return None
    if model_info is not None:
        content = tflite_metadata.with_metadata(content, model_info)
    probe = np.random.default_rng(0).random((2, graph.height, graph.width, 3),
                                            dtype=np.float32)
    with graph.running() as run:
        difference = np.abs(engines.TFLiteEngine(content)(probe) - run(probe)).max()
    if difference > TFLITE_TOLERANCE:
        if not required:
            logger.warning("No TFLite model: it differs from the frozen graph by %.2g, more "
                           "than %g; label_image.py will run the frozen graph", difference,
                           TFLITE_TOLERANCE)
            return None
        logger.warning("The TFLite model differs from the frozen graph by %.2g", difference)
    logger.info("The TFLite model %s differs from the frozen graph by at most %.2g",
                options.tflite_output_file, difference)
    return content
