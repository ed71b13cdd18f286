"""One retraining run, start to finish: data, bottlenecks, training, evaluation, export."""

import collections
import concurrent.futures
import contextlib
import datetime
import itertools
import logging
import os
import tempfile

import numpy as np

from multilabel.base import storage
from multilabel.base.stage_clock import StageClock
from multilabel.data import dataset as dataset_lib
from multilabel.data.distortions import Distortions, distorted_image
from multilabel.evaluation import label_issues, metrics, thresholds as thresholds_lib
from multilabel.export import stage, tflite_metadata
from multilabel.features import engines, module_set
from multilabel.features.backbones import module_builder
from multilabel.base.host import cores
from multilabel.training import feature_scaling, fine_tuning, trainer

logger = logging.getLogger(__name__)


def run(options, changed=()):
    """Train and export a classifier as `options` (a `TrainOptions` whose paths are
    resolved: options.resolve) say; return the measures written to metrics.json. Raise
    UserError on bad input.

    `changed` are the `(option, value)` pairs the user set (`TrainOptions.changed`,
    before the paths were resolved): the report lists them, and an output the user
    named must be written or fail, where a default one may be left out with a warning.
    """
    clock = StageClock()
    data = dataset_lib.load_dataset(options.image_dir, options.num_classes,
                                    options.validation_percentage, options.testing_percentage)
    data = dataset_lib.drop_invalid_images(data, options.skip_invalid_images)
    _log_sizes(data)
    clock.lap("data")
    module = module_set.load_module_set(options.tfhub_module, options.model_dir,
                                        options.bottleneck_dir, options.bottleneck_engine)
    if options.fine_tune:
        fine_tuning.load_fine_tunable(module.path)  # refuse a module it can't train, early
    clock.lap("module")
    features = _bottlenecks(options, module, data)
    train_x, validation_x, _ = features
    scales = _feature_scales(module, train_x)
    clock.lap("bottlenecks")

    if not len(data.validation):
        logger.warning("The validation part is empty: no early stopping, the last step is kept")
    records = trainer.TrainRecords(
        options.summaries_dir, options.checkpoint_path, options.resume,
        stage.intermediate_graph_writer(options, _trained_model(options, module)))
    with _train_inputs(options, module, data.train, train_x) as inputs:
        result = trainer.train(trainer.TrainData(inputs, data.train.labels, validation_x,
                                                 data.validation.labels, data.class_names,
                                                 scales), options, records)
    clock.lap("training")
    report = {"preset": options.preset, "module": ",".join(options.tfhub_module),
              "best_step": result.step}
    if scales is not None:
        report["feature_scales"] = _member_scales(module, scales)
    evaluation = final = _evaluate(options, data, result, features, result.step, scales)
    clock.lap("evaluation")
    if not options.fine_tune:
        report.update(evaluation.report)
        _export(options, changed, module, result, data, evaluation, report, features[0],
                clock)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            tuned = fine_tuning.fine_tune(options, module, data, features, result, scratch)
            clock.lap("fine-tuning")
            final = _evaluate(options, data, tuned.head, tuned.features, result.step, scales,
                              phase_1=evaluation)
            clock.lap("evaluation")
            _log_gain(evaluation.report, final.report)
            report.update(phase_1=evaluation.report, fine_tuning=tuned.summary, **final.report)
            _export(options, changed, module._replace(path=tuned.module_path), tuned.head, data,
                    final, report, tuned.features[0], clock)
    issues = _write_label_issues(options.label_issues, final, data.class_names)
    clock.lap("export: label issues")
    if options.report_page:
        _write_report_page(options, changed, module, data, result, report, final,
                           clock.seconds, issues)
        clock.lap("report page")
    logger.info("Export stage: %s", ", ".join(
        f"{part.removeprefix('export: ')} {seconds:.2f} s" for part, seconds
        in clock.seconds.items() if part.startswith("export") or part == "report page"))
    return report


class _Evaluation(collections.namedtuple(
        "_Evaluation", "report thresholds never_empty test test_probs held_out")):
    """A trained model's thresholds and label rule, its report entries, its test
    probabilities, and the held-out predictions (label_issues.HeldOut) that label issues are
    found in."""


def _evaluate(options, data, result, features, head_steps, scales, phase_1=None):
    """Thresholds from out-of-fold heads on `features` (scaled by `scales` as the head was),
    then the validation and test report.

    After fine-tuning (`phase_1`: the evaluation of the model before it), the module was
    trained on the training images, so its features of them are more separable than of
    new images: each threshold chosen on them is checked on the validation images, which
    it did not train on, and replaced by 0.5 where 0.5 does better there
    (docs/fine_tuning.md#thresholds); and the training images' labels are judged by
    phase 1's out-of-fold predictions, which the fine-tuned module did not train on.
    """
    train_x, validation_x, test_x = features
    train_labels = np.concatenate([data.train.labels, data.validation.labels])
    chosen, out_of_fold = trainer.out_of_fold_thresholds(
        np.concatenate([train_x, validation_x]), train_labels, options, head_steps, scales)
    validation_probs = _probs(validation_x, result)
    replaced = {}
    if phase_1 is not None and len(data.validation):
        chosen, replaced = thresholds_lib.guarded(chosen, data.validation.labels,
                                                  validation_probs)
        for c, (f1, plain) in replaced.items():
            logger.warning("Class %s: threshold 0.5, not the out-of-fold one, which scored F1 "
                           "%.4f on validation against 0.5's %.4f", data.class_names[c], f1,
                           plain)
    report = {"thresholds": [float(t) for t in chosen]}
    if phase_1 is not None:
        report["thresholds_set_to_0.5"] = [data.class_names[c] for c in replaced]
    # An empty label set is always wrong where no training image has one: the top-margin
    # rule then fills it (evaluation.thresholds), in the measures and in label_image.py.
    never_empty = thresholds_lib.data_never_empty(data.train.labels, data.validation.labels)
    report["never_empty"] = never_empty
    if len(data.validation):
        report["validation"] = metrics.evaluate(
            data.validation.labels, validation_probs, chosen, never_empty)
    test, test_x = _test_subset(data.test, test_x, options)
    test_probs = _probs(test_x, result)
    if len(test):
        report["test"] = metrics.evaluate(test.labels, test_probs, chosen, never_empty)
        logger.info("Test report on %d images:\n%s", len(test),
                    metrics.format_report(report["test"], data.class_names))
    else:
        logger.warning("The test part is empty: no test report")
    held_out = [label_issues.HeldOut("test", test.paths, test.labels, test_probs)]
    if phase_1 is not None:
        held_out[:0] = [part for part in phase_1.held_out if part.name == "train"]
    elif out_of_fold is not None:
        held_out.insert(0, label_issues.HeldOut("train", data.train.paths + data.validation.paths,
                                                train_labels, out_of_fold))
    return _Evaluation(report, chosen, never_empty, test, test_probs, tuple(held_out))


def _feature_scales(module, train_x):
    """Factors putting each member's block of a set's features on one scale (see
    feature_scaling), from the training bottlenecks; None for a single module."""
    if len(module.members) == 1:
        return None
    scales = feature_scaling.block_scales(train_x, [m.dim for m in module.members])
    logger.info("Each module's features scaled to one mean norm (over sqrt(k)): %s", ", ".join(
        f"{handle} x{factor:.3g}" for handle, factor in _member_scales(module, scales).items()))
    return scales


def _member_scales(module, scales):
    """{member handle: the factor of its block}."""
    starts = np.cumsum([0] + [m.dim for m in module.members[:-1]])
    return {m.handle: float(scales[start]) for m, start in zip(module.members, starts)}


def _log_gain(before, after):
    for part in ("validation", "test"):
        if part in before and part in after:
            logger.info("Fine-tuning moved %s mAP from %.4f to %.4f, label accuracy from %.4f "
                        "to %.4f", part, before[part]["mean_average_precision"],
                        after[part]["mean_average_precision"], before[part]["label_accuracy"],
                        after[part]["label_accuracy"])


def _bottlenecks(options, module, data):
    """The bottlenecks of the train, validation and test parts, computed where not cached."""
    parts = (data.train, data.validation, data.test)
    every = module_set.set_bottlenecks([p for part in parts for p in part.paths], module,
                                       options.bottleneck_dir, options.bottleneck_batch_size)
    return np.split(every, np.cumsum([len(p) for p in parts])[:-1])


def _log_sizes(data):
    logger.info("%d training, %d validation and %d test images, %d classes (%s)",
                len(data.train), len(data.validation), len(data.test), data.num_classes,
                ", ".join(data.class_names))
    note = dataset_lib.small_validation_note(data)
    if note:
        logger.warning(note)


@contextlib.contextmanager
def _train_inputs(options, module, part, train_x):
    """A function from training indices to bottlenecks: cached, or of distorted images
    (then run by one worker per core, whose pool is shut down when training ends)."""
    # With --fine_tune the distortions are phase 2's: the head trains on cached bottlenecks.
    distortions = Distortions() if options.fine_tune else Distortions.of(options)
    if not distortions.enabled:
        yield lambda indices: train_x[indices]
        return
    logger.info("Distortions on: training images go through the module at every step")
    workers = cores()
    calls = itertools.count()

    def distorted_and_run(chunk):
        # As in the bottleneck pipeline: each worker distorts its share, then runs it.
        return module.engine(np.stack([
            distorted_image(part.paths[i], module.height, module.width, distortions,
                            np.random.default_rng(seed)) for i, seed in chunk]))

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        def distorted(indices):
            rng = np.random.default_rng([options.random_seed, next(calls)])
            seeds = rng.integers(0, 2**63, len(indices))
            chunks = [chunk for chunk in np.array_split(np.stack([indices, seeds], 1), workers)
                      if len(chunk)]
            return np.concatenate(list(pool.map(distorted_and_run, chunks)))

        yield distorted


def _trained_model(options, module, result=None):
    """The classifier to export: `module` and the trained layer of `result` (None while
    training, when the writer of intermediate graphs fills the layer in at each step)."""
    return stage.TrainedModel(module.path, module.height, module.width,
                              None if result is None else result.weights,
                              None if result is None else result.biases,
                              options.final_tensor_name, _module_tflite(options, module),
                              _module_graph(options, module))


def _module_graph(options, module):
    """Where the module's own frozen graph is kept, for the exported graph to be derived
    from (export.formats.with_final_layer): beside its TFLite conversion in the bottleneck
    cache, whose folder name follows the module's content; None for a module set or a
    fine-tuned module (its layers changed)."""
    if options.fine_tune or len(module.members) != 1:
        return None
    return storage.join(options.bottleneck_dir, module.members[0].engine_key,
                        f"module_graph_{module.height}x{module.width}.pb")


def _module_tflite(options, module):
    """The module's kept TFLite conversion, which the TFLite export is derived from
    (export.derived_tflite): only for one module, run by the TFLite engine, not
    fine-tuned (its layers changed); else None, and the export is converted."""
    if options.fine_tune or len(module.members) != 1 or module.engine.name != "tflite":
        return None
    path = engines.tflite_model_path(
        os.path.join(options.bottleneck_dir, module.members[0].engine_key))
    return path if os.path.isfile(path) else None


def _probs(x, result):
    return trainer.sigmoid(x @ result.weights + result.biases)


def _test_subset(test, test_x, options):
    if options.test_batch_size < 0 or options.test_batch_size >= len(test):
        return test, test_x
    keep = np.random.default_rng(options.random_seed).choice(len(test), options.test_batch_size,
                                                            replace=False)
    return test.subset(keep), test_x[keep]


def _print_misclassified(test, probs, chosen, never_empty, class_names):
    predicted = thresholds_lib.apply_thresholds(probs, chosen, never_empty)
    wrong = np.flatnonzero((predicted != test.labels.astype(bool)).any(axis=1))
    print(f"=== {len(wrong)} of {len(test)} test images with a wrong label set ===")
    for i in wrong:
        truth = [n for n, f in zip(class_names, test.labels[i]) if f]
        guess = [n for n, f in zip(class_names, predicted[i]) if f]
        print(f"{test.paths[i]}  true: {','.join(truth) or '-'}  predicted: {','.join(guess) or '-'}")


def _export(options, changed, module, result, data, evaluation, report, train_x, clock):
    if len(evaluation.test) and options.print_misclassified_test_images:
        _print_misclassified(evaluation.test, evaluation.test_probs, evaluation.thresholds,
                             evaluation.never_empty, data.class_names)
    results = stage.Results(
        tuple(data.class_names), np.asarray(evaluation.thresholds), tuple(evaluation.test.paths),
        evaluation.test_probs, report, _model_info(options, module, data, evaluation.thresholds),
        evaluation.never_empty, evaluation.test.labels, tuple(data.train.paths),
        _probs(train_x, result))
    # A TFLite model the user named must be written; the default one only where faithful.
    stage.write_outputs(options, _trained_model(options, module, result), results,
                        tflite_required="tflite_output_file" in dict(changed), clock=clock)


def _model_info(options, module, data, thresholds):
    """What the TFLite model's metadata says: module, data, date, classes, thresholds, licence."""
    when = datetime.datetime.now(datetime.timezone.utc)
    licences = "; ".join(
        f"{m.handle}: {module_builder.weights_licence(m.path) or 'not recorded, see its source'}"
        for m in module.members)
    return tflite_metadata.ModelInfo(
        name=f"Multi-label classifier: {', '.join(data.class_names)}",
        description=(
            f"Sigmoid scores of {len(data.class_names)} classes on the features of "
            f"{', '.join(options.tfhub_module)}{' (fine-tuned)' if options.fine_tune else ''}, "
            f"trained by retrain.py on {len(data.train)} images of "
            f"{os.path.basename(os.path.normpath(options.image_dir))}; exported "
            f"{when:%Y-%m-%d %H:%M} UTC."),
        version=f"{when:%Y%m%d.%H%M%S}", class_names=tuple(data.class_names),
        thresholds=tuple(float(t) for t in thresholds), licence=licences)


def _write_label_issues(path, evaluation, class_names):
    """The label issues file from the held-out predictions; its issues, worst first."""
    issues = label_issues.write_label_issues(path, evaluation.held_out, class_names)
    logger.info("Wrote %s: %d images whose labels look wrong", path, len(issues))
    return issues


def _write_report_page(options, changed, module, data, result, report, evaluation,
                       stage_seconds, issues):
    """Write the HTML report page last; a failure is one warning, never a failed run."""
    path = options.report_page
    try:
        # Imported here, not at the top: a broken plotting install must not stop training.
        from multilabel.report import page

        run_facts = page.RunFacts(
            module=",".join(options.tfhub_module),
            module_details=f"{module.path}, {module.height} x {module.width} images -> "
                           f"{module.dim} features, bottlenecks by the {module.engine.name} "
                           "engine",
            sizes={part.name: len(part) for part in (data.train, data.validation, data.test)},
            class_names=data.class_names, changed_flags=changed,
            stage_seconds=dict(stage_seconds), history=result.history)
        page.write_page(
            path, run_facts, report,
            page.TestImages(evaluation.test.paths, evaluation.test.labels,
                            evaluation.test_probs, np.asarray(evaluation.thresholds),
                            evaluation.never_empty),
            options.report_wrong_images, issues=issues)
    except Exception as e:  # any error at all: the page only shows outputs already written
        logger.warning("Could not write the report page %s (%s: %s); the other outputs are "
                       "written", path, type(e).__name__, e)
    else:
        logger.info("Wrote %s", path)
