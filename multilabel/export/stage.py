"""The export stage of a run: the trained classifier and its companions, written and checked.

A run ends by writing its frozen graph, its TFLite model, class names, thresholds and
their rule, measures and test predictions, and optionally a SavedModel. Before anything
is written, the frozen graph is run on a few test images in this process, by the runner
label_image.py runs it with (`labelling.frozen_graph`): it must give the probabilities
training computed from cached bottlenecks, or the graph and the training code have
drifted apart (a preprocessing change, a wrong fold of the feature scales). The TFLite
model is checked against the frozen graph on the same images (one pass of the graph).
Quantized copies (--quantize) are made and measured by `quantization`.

Everything is computed first and written last, file after file, each registered in the
run's `run_folder.RunSet`, whose manifest the run writes last (after the label issues
and the report page): readers refuse a set that a kill left mixed.
"""

import dataclasses
import json
import logging
import os
import tempfile
from typing import NamedTuple

import numpy as np

from multilabel.base import atomic, storage
from multilabel.data import listfile
from multilabel.evaluation import thresholds as thresholds_lib
from multilabel.export import derived_tflite, formats, quantization, tflite_metadata
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
    # The module's kept TFLite conversion (features.engines), which the TFLite classifier
    # is derived from (export.derived_tflite); None: convert a SavedModel instead.
    module_tflite: str | None = None
    # Where the module's own frozen graph is kept (formats.module_graph_def), which the
    # classifier's graph is derived from; None: the module is loaded and frozen each time.
    module_graph: str | None = None

    def graph_def(self):
        if self.module_graph is None:
            return formats.frozen_graph_def(self.module_path, self.height, self.width,
                                            self.weights, self.biases, self.final_tensor_name)
        return formats.with_final_layer(self._module_graph_def(), self.weights, self.biases,
                                        self.final_tensor_name)

    def _module_graph_def(self):
        """The module's frozen graph: the kept one, or made and kept (atomically). A kept
        file that does not parse is made again; one that parses but computes something
        else is caught by the check of the exported graph against training."""
        kept = storage.read_bytes(self.module_graph)
        if kept is not None:
            try:
                return formats.parse_graph_def(kept)
            except ValueError as e:
                logger.warning("Making the module's graph again: %s does not parse (%s)",
                               self.module_graph, e)
        graph_def = formats.module_graph_def(self.module_path, self.height, self.width)
        storage.write_bytes(self.module_graph, graph_def.SerializeToString())
        return graph_def


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
    # For --quantize: the test labels, and the training images with the float model's
    # probabilities of them (calibration and each copy's thresholds).
    test_labels: np.ndarray = None
    train_paths: tuple = ()
    train_probs: np.ndarray = None


def write_outputs(options, trained, results, tflite_required=False, clock=None):
    """Check the `TrainedModel`, then write it and its companions where `options` (a
    resolved TrainOptions) say, as one set: every file is made first, then they are
    written one after another. Returns the `run_folder.RunSet` holding them, whose
    manifest makes them one run's once the caller has added its own outputs and written
    it (a kill before that leaves a set readers refuse).

    The TFLite model, which label_image.py prefers to the graph, is written only where it
    matches the graph within TFLITE_TOLERANCE, and a conversion that fails is a warning;
    unless `tflite_required` (the user named the file): then it is written regardless, or
    the run fails. Each part's seconds go to `clock` (a StageClock) as "export: PART"."""
    lap = clock.lap if clock is not None else lambda part: None
    graph_def = trained.graph_def()
    graph = import_frozen_graph(graph_def, options.output_graph,
                                output_layer=trained.final_tensor_name,
                                height=trained.height, width=trained.width)
    lap("export: frozen graph")
    check = _graph_check(graph, results)
    if len(results.test_paths):
        results.report["export_check_max_difference"] = check.difference
    lap("export: checks")
    exports = _saved_model_and_tflite(options, trained, check, results, tflite_required, lap)
    tflite = exports[0].content if exports else None
    run_id = results.report["run_id"] = run_folder.new_run_id()
    files = {"graph": options.output_graph, "labels": options.output_labels,
             "thresholds": options.output_thresholds,
             "rule": thresholds_lib.rule_path(options.output_thresholds),
             "metrics": options.metrics_file}
    formats.write_graph_def(options.output_graph, graph_def)
    if tflite is not None:
        atomic.write_bytes(options.tflite_output_file, tflite)
        files["tflite"] = options.tflite_output_file
    if len(exports) > 1:
        results.report["exports"] = {e.name: e.measures for e in exports}
    for export in exports[1:]:
        if not export.measures.get("left_out"):
            files.update(_write_copy(options, export, results.never_empty))
    listfile.write_class_names(options.output_labels, results.class_names)
    thresholds_lib.write_thresholds(options.output_thresholds, results.thresholds)
    thresholds_lib.write_rule(options.output_thresholds, results.never_empty)
    atomic.write_text(options.metrics_file, json.dumps(results.report, indent=2) + "\n")
    if len(results.test_paths):
        _write_predictions(options.test_predictions, results)
        files["test_predictions"] = options.test_predictions
    logger.info("Wrote %s as run %s", ", ".join(files.values()), run_id)
    lap("export: writing")
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


class _Check(NamedTuple):
    """The images every export is checked on, the frozen graph's probabilities of them,
    and how far those are from training's (None for random images)."""

    images: np.ndarray
    graph_probs: np.ndarray
    difference: float | None


def _graph_check(graph, results):
    """Run the frozen graph (a `FrozenGraph`) once on a few test images, which it must
    give the training process's probabilities of; the TFLite exports are then checked
    against its output on the same images. Without test images, on random ones."""
    n = min(CHECK_IMAGES, len(results.test_paths))
    if n:
        images = quantization.load_images(results.test_paths[:n], graph.height, graph.width)
    else:
        images = np.random.default_rng(0).random((2, graph.height, graph.width, 3),
                                                 dtype=np.float32)
    with graph.running() as run:
        probs = run(images)
    if not n:
        return _Check(images, probs, None)
    difference = float(np.abs(probs - results.test_probs[:n]).max())
    log = logger.info if difference < GRAPH_TOLERANCE else logger.warning
    log("The exported graph reproduces the test probabilities of %d images within %.2g", n,
        difference)
    return _Check(images, probs, difference)


def _write_predictions(path, results):
    """The test images' probabilities, in label_image.py's JSON lines, for comparison."""
    report = label_report.Report("json", tuple(results.class_names),
                                 np.asarray(results.thresholds),
                                 never_empty=results.never_empty)
    atomic.write_text(path, "".join(report.record(image, row)
                                    for image, row in zip(results.test_paths, results.test_probs)))


def _saved_model_and_tflite(options, trained, check, results, required, lap):
    """Write the SavedModel where asked for; return the TFLite exports converted from it
    (`quantization.Export`s, float32 first, then the --quantize copies, measured), with
    TFLite metadata (so that MediaPipe runs them as they are), float32 checked against the
    frozen graph on `check`'s images; [] when there is none to write."""
    if not (options.saved_model_dir or options.tflite_output_file):
        return []
    with tempfile.TemporaryDirectory() as scratch:
        saved = options.saved_model_dir or os.path.join(scratch, "saved_model")
        # The float export is derived from the module's kept TFLite model where there is
        # one; the SavedModel is then written only where asked for or quantized from.
        content = _derived(options, trained)
        if options.saved_model_dir or options.quantize or content is None:
            formats.write_saved_model(saved, trained.module_path, trained.height,
                                      trained.width, trained.weights, trained.biases)
            lap("export: SavedModel")
        if not options.tflite_output_file:
            return []
        try:
            content = content or engines.convert(saved)
        except Exception as e:  # noqa: BLE001 - the converter raises many unrelated types
            if required:
                raise
            logger.warning("No TFLite model: conversion failed (%s); label_image.py will run "
                           "the frozen graph", " ".join(str(e).split())[:300])
            return []
        lap("export: TFLite model")
        content = _checked_tflite(options, content, results.model_info, check, required)
        lap("export: TFLite metadata and check")
        if content is None or not options.quantize:
            return [] if content is None else [quantization.Export(
                quantization.FLOAT32, content, np.asarray(results.thresholds), {})]
        if not len(results.test_paths):
            logger.warning("No quantized TFLite models (%s): the test part is empty, so they "
                           "cannot be measured against float", ",".join(options.quantize))
            return [quantization.Export(quantization.FLOAT32, content,
                                        np.asarray(results.thresholds), {})]
        chosen = quantization.representative_indices(len(results.train_paths))
        representative = quantization.Images(
            quantization.load_images([results.train_paths[i] for i in chosen],
                                     trained.height, trained.width),
            results.train_probs[chosen])
        converted = quantization.convert(saved, options.quantize, representative)
    lap("export: quantized conversions")
    test = quantization.Images(
        quantization.load_images(results.test_paths, trained.height, trained.width),
        results.test_probs, results.test_labels)
    exports = quantization.measured_exports(content, converted, results.model_info,
                                            results.thresholds, results.never_empty,
                                            representative, test)
    lap("export: quantized measures")
    return exports


def _derived(options, trained):
    """The float32 TFLite classifier derived from the module's kept TFLite model, or None
    where there is none (or it cannot be read or extended: then it is converted)."""
    if not (options.tflite_output_file and trained.module_tflite):
        return None
    try:
        content = derived_tflite.with_final_layer(
            storage.read_regular(trained.module_tflite, storage.MODEL_LIMIT), trained.weights,
            trained.biases)
        logger.info("The TFLite model: the trained layer appended to %s, no conversion",
                    trained.module_tflite)
        return content
    except (OSError, ValueError) as e:
        logger.info("Converting the classifier to TFLite: cannot derive it from %s (%s)",
                    trained.module_tflite, e)
        return None


def _checked_tflite(options, content, model_info, check, required):
    """The float32 TFLite model with its metadata, where it gives the frozen graph's
    probabilities of the check images within TFLITE_TOLERANCE; else None (or, where
    `required`, the model with a warning)."""
    if model_info is not None:
        content = tflite_metadata.with_metadata(content, model_info)
    difference = np.abs(engines.TFLiteEngine(content)(check.images) - check.graph_probs).max()
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


def _write_copy(options, export, never_empty):
    """Write a quantized export and its thresholds (with the label rule) beside the float
    ones; return their {manifest role: path}."""
    model = run_folder.variant_path(options.tflite_output_file, export.name)
    thresholds = run_folder.variant_path(options.output_thresholds, export.name)
    atomic.write_bytes(model, export.content)
    thresholds_lib.write_thresholds(thresholds, export.thresholds)
    thresholds_lib.write_rule(thresholds, never_empty)
    return {run_folder.variant_role("tflite", export.name): model,
            run_folder.variant_role("thresholds", export.name): thresholds,
            run_folder.variant_role("rule", export.name): thresholds_lib.rule_path(thresholds)}
