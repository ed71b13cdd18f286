"""The export stage of a run: the trained classifier and its companions, written and checked.

A run ends by writing its frozen graph, its TFLite model, class names, thresholds and
their rule, measures and test predictions, and optionally a SavedModel. Before anything
is written, the frozen graph is run on a few test images in this process, by the runner
label_image.py runs it with (`labelling.frozen_graph`): it must give the probabilities
training computed from cached bottlenecks, or the graph and the training code have
drifted apart (a preprocessing change, a wrong fold of the feature scales). The TFLite
model is checked against the frozen graph the same way.

Everything is computed first and written last, file after file, then the run folder's
manifest (`labelling.run_folder`): readers refuse a set that a kill left mixed.
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
class Outputs:
    """Where a run writes what it makes; "" leaves an optional output out."""

    output_graph: str
    output_labels: str
    output_thresholds: str
    metrics_file: str
    test_predictions: str
    intermediate_output_graphs_dir: str
    intermediate_store_frequency: int
    summaries_dir: str
    saved_model_dir: str
    tflite_output_file: str  # "" for none
    report_page: str = ""  # the HTML report page; "" for none
    report_wrong_images: int = 100  # wrong test images it shows at most; -1 for all
    label_issues: str = ""  # the labels that look wrong, CSV; "" for beside metrics_file
    # The default TFLite export, which label_image.py prefers to the graph: written only
    # where it matches the graph within TFLITE_TOLERANCE, and a conversion that fails is
    # a warning. An asked-for one (--tflite_output_file) is written regardless, or fails.
    tflite_only_if_faithful: bool = False


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


def write_outputs(outputs, trained, results):
    """Check the `TrainedModel`, then write it and its companions as `outputs` says, as
    one set: every file is made first, then they are written one after another, then the
    manifest that makes them one run's (a kill before it leaves a set readers refuse)."""
    graph_def = trained.graph_def()
    graph = import_frozen_graph(graph_def, outputs.output_graph,
                                output_layer=trained.final_tensor_name,
                                height=trained.height, width=trained.width)
    if len(results.test_paths):
        results.report["export_check_max_difference"] = _check_graph(graph, results)
    tflite = _saved_model_and_tflite(outputs, trained, graph, results.model_info)
    run_id = results.report["run_id"] = run_folder.new_run_id()
    files = {"graph": outputs.output_graph, "labels": outputs.output_labels,
             "thresholds": outputs.output_thresholds,
             "rule": thresholds_lib.rule_path(outputs.output_thresholds),
             "metrics": outputs.metrics_file}
    formats.write_graph_def(outputs.output_graph, graph_def)
    if tflite is not None:
        atomic.write_bytes(outputs.tflite_output_file, tflite)
        files["tflite"] = outputs.tflite_output_file
    listfile.write_class_names(outputs.output_labels, results.class_names)
    thresholds_lib.write_thresholds(outputs.output_thresholds, results.thresholds)
    thresholds_lib.write_rule(outputs.output_thresholds, results.never_empty)
    atomic.write_text(outputs.metrics_file, json.dumps(results.report, indent=2) + "\n")
    if len(results.test_paths):
        _write_predictions(outputs.test_predictions, results)
        files["test_predictions"] = outputs.test_predictions
    run_folder.write_manifest(os.path.dirname(os.path.abspath(outputs.output_graph)), run_id,
                              files)
    logger.info("Wrote %s as run %s", ", ".join(files.values()), run_id)


def intermediate_graph_writer(outputs, trained):
    """`on_eval(step, weights, biases)` for training that writes a frozen graph every
    `intermediate_store_frequency` steps, or None when that is 0."""
    if not outputs.intermediate_store_frequency:
        return None

    def write(step, weights, biases):
        if step % outputs.intermediate_store_frequency == 0:
            path = os.path.join(outputs.intermediate_output_graphs_dir, f"intermediate_{step}.pb")
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


def _saved_model_and_tflite(outputs, trained, graph, model_info):
    """Write the SavedModel where asked for; return the TFLite model converted from it,
    with TFLite metadata (so that MediaPipe runs it as it is), checked against the frozen
    graph (None when there is none to write)."""
    if not (outputs.saved_model_dir or outputs.tflite_output_file):
        return None
    with tempfile.TemporaryDirectory() as scratch:
        saved = outputs.saved_model_dir or os.path.join(scratch, "saved_model")
        formats.write_saved_model(saved, trained.module_path, trained.height, trained.width,
                                  trained.weights, trained.biases)
        if not outputs.tflite_output_file:
            return None
        try:
            content = engines.convert(saved)
        except Exception as e:  # noqa: BLE001 - the converter raises many unrelated types
            if not outputs.tflite_only_if_faithful:
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
        if outputs.tflite_only_if_faithful:
            logger.warning("No TFLite model: it differs from the frozen graph by %.2g, more "
                           "than %g; label_image.py will run the frozen graph", difference,
                           TFLITE_TOLERANCE)
            return None
        logger.warning("The TFLite model differs from the frozen graph by %.2g", difference)
    logger.info("The TFLite model %s differs from the frozen graph by at most %.2g",
                outputs.tflite_output_file, difference)
    return content
