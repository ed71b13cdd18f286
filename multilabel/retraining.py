"""One retraining run, start to finish: data, bottlenecks, training, evaluation, export."""

import collections
import concurrent.futures
import contextlib
import dataclasses
import datetime
import itertools
import logging
import math
import os
import tempfile

import numpy as np

from multilabel.base import storage
from multilabel.base.stage_clock import StageClock
from multilabel.data import dataset as dataset_lib
from multilabel.data.distortions import Distortions, distorted_image
from multilabel.evaluation import (bootstrap, calibration as calibration_lib, label_issues,
                                   metrics, near_duplicates, thresholds as thresholds_lib)
from multilabel.export import model_card, stage, tflite_metadata
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
    found = near_duplicates.find_near_duplicates((data.train, data.validation, data.test),
                                                 np.concatenate(features))
    leaked = {found.paths[i] for i in found.leaked_test()} if options.dedupe else set()
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
    evaluation = final = _evaluate(options, data, result, features, result.step, scales,
                                   leaked=leaked)
    clock.lap("evaluation")
    if not options.fine_tune:
        report.update(evaluation.report)
        outputs = _export(options, changed, module, evaluation.head, data, evaluation, report,
                          features[0], clock)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            tuned = fine_tuning.fine_tune(options, module, data, features, result, scratch)
            clock.lap("fine-tuning")
            final = _evaluate(options, data, tuned.head, tuned.features, result.step, scales,
                              phase_1=evaluation, leaked=leaked)
            clock.lap("evaluation")
            report.update(phase_1=evaluation.report, fine_tuning=tuned.summary, **final.report)
            if len(final.test):
                report["fine_tuning_gain"] = _gain(evaluation, final)
            outputs = _export(options, changed, module._replace(path=tuned.module_path),
                              final.head, data, final, report, tuned.features[0], clock)
    issues = _write_label_issues(options.label_issues, final, data.class_names)
    outputs.add("label_issues", options.label_issues)
    clock.lap("export: label issues")
    _write_near_duplicates(options.near_duplicates, found)
    outputs.add("near_duplicates", options.near_duplicates)
    reviewed = _write_review_page(options, data, issues, found, final)
    if reviewed is not None:
        outputs.add("review_page", options.review_page)
    if options.model_card:
        _write_model_card(options, module, data, report, issues, changed, found,
                          outputs.paths())
        outputs.add("model_card", options.model_card)
    clock.lap("export: near-duplicates, model card, review page")
    if options.report_page:
        if _write_report_page(options, changed, module, data, result, report, final,
                              clock.seconds, issues, found, reviewed):
            outputs.add("report_page", options.report_page)
        clock.lap("report page")
    outputs.write_manifest()  # last: it makes every output above one run's set
    logger.info("Export stage: %s", ", ".join(
        f"{part.removeprefix('export: ')} {seconds:.2f} s" for part, seconds
        in clock.seconds.items() if part.startswith("export") or part == "report page"))
    return report


class _Evaluation(collections.namedtuple(
        "_Evaluation",
        "report thresholds never_empty test test_probs held_out head calibration")):
    """A trained model's thresholds and label rule, its report entries, its test
    probabilities, the held-out predictions (label_issues.HeldOut, before calibration)
    that label issues are found in, the head to export (the trained one with its
    calibration folded in) and that calibration."""


def _evaluate(options, data, result, features, head_steps, scales, phase_1=None, leaked=()):
    """Thresholds from out-of-fold heads on `features` (scaled by `scales` as the head was),
    then the validation and test report.

    After fine-tuning (`phase_1`: the evaluation of the model before it), the module was
    trained on the training images, so its features of them are more separable than of
    new images: each threshold chosen on them is checked on the validation images, which
    it did not train on, and replaced by 0.5 where 0.5 does better there
    (docs/fine_tuning.md#thresholds); and the training images' labels are judged by
    phase 1's out-of-fold predictions, which the fine-tuned module did not train on.

    The test images in `leaked` (paths: --dedupe's near-duplicates of training images)
    are left out of the test measures, which are then also given with them.
    """
    train_x, validation_x, test_x = features
    train_labels = np.concatenate([data.train.labels, data.validation.labels])
    chosen, out_of_fold = trainer.out_of_fold_thresholds(
        np.concatenate([train_x, validation_x]), train_labels, options, head_steps, scales)
    chosen, rare = thresholds_lib.rare_guarded(chosen, train_labels)
    for c, (count, was) in rare.items():
        logger.warning("Class %s: only %d positive image(s) to choose its threshold on "
                       "(train %d, validation %d, test %d), under %d: threshold 0.5, not %.4g, "
                       "which would predict it on many images (docs/data.md#a-class-with-few-"
                       "images)", data.class_names[c], count, *(
                           int(part.labels[:, c].sum())
                           for part in (data.train, data.validation, data.test)),
                       thresholds_lib.MIN_POSITIVES, was)
    validation_probs = _probs(validation_x, result)
    replaced = {}
    if phase_1 is not None and len(data.validation):
        chosen, replaced = thresholds_lib.guarded(chosen, data.validation.labels,
                                                  validation_probs)
        for c, (f1, plain) in replaced.items():
            logger.warning("Class %s: threshold 0.5, not the out-of-fold one, which scored F1 "
                           "%.4f on validation against 0.5's %.4f", data.class_names[c], f1,
                           plain)
    # Calibrated on predictions no model saw in training: out-of-fold ones, or after
    # fine-tuning (whose module trained on the training images) the validation part's.
    fitted_on = (("out-of-fold", train_labels, out_of_fold) if phase_1 is None
                 else ("validation", data.validation.labels, validation_probs))
    calibrated = _fit_calibration(options.calibration, *fitted_on, data.num_classes)
    raw = (result, chosen)
    result, chosen = _calibrated(result, calibrated), calibrated.thresholds(chosen)
    validation_probs = _probs(validation_x, result)
    report = {"thresholds": [float(t) for t in chosen]}
    if rare:
        report["few_positives"] = {data.class_names[c]: count for c, (count, _) in rare.items()}
    if phase_1 is not None:
        report["thresholds_set_to_0.5"] = [data.class_names[c] for c in replaced]
    # An empty label set is always wrong where no training image has one: the top-margin
    # rule then fills it (evaluation.thresholds), in the measures and in label_image.py.
    never_empty = thresholds_lib.data_never_empty(data.train.labels, data.validation.labels)
    report["never_empty"] = never_empty
    if len(data.validation):
        report["validation"] = {"class_names": list(data.class_names), **metrics.evaluate(
            data.validation.labels, validation_probs, chosen, never_empty)}
    test, test_x = _test_subset(data.test, test_x, options)
    if leaked:
        test, test_x = _without_leaks(test, test_x, _probs(test_x, result), leaked, chosen,
                                      never_empty, report)
    test_probs = _probs(test_x, result)
    report["calibration"] = {**calibrated.report(), "fitted_on": fitted_on[0],
                             "images": len(fitted_on[1])}
    if len(test):
        report["test"] = {"class_names": list(data.class_names), **metrics.evaluate(
            test.labels, test_probs, chosen, never_empty)}
        report["test"]["intervals"] = bootstrap.intervals(test.labels, test_probs, chosen,
                                                          never_empty)
        report["intervals"] = bootstrap.describe()
        report["calibration"].update(_calibration_effect(
            test.labels, (_probs(test_x, raw[0]), raw[1]), (test_probs, chosen), never_empty))
        logger.info("Test report on %d images, 95%% intervals from %d resamples:\n%s",
                    len(test), bootstrap.RESAMPLES,
                    metrics.format_report(report["test"], data.class_names))
        logger.info("Calibration (%s): test ECE %.4f before, %.4f after",
                    calibrated.method, report["calibration"]["test_ece_before"],
                    report["calibration"]["test_ece_after"])
    else:
        logger.warning("The test part is empty: no test report")
    # Label issues are found in the probabilities before calibration, as they were
    # measured (docs/label_issues.md): confident learning sets its own per-class cut-offs.
    held_out = [label_issues.HeldOut("test", test.paths, test.labels, _probs(test_x, raw[0]))]
    if phase_1 is not None:
        held_out[:0] = [part for part in phase_1.held_out if part.name == "train"]
    elif out_of_fold is not None:
        held_out.insert(0, label_issues.HeldOut("train", data.train.paths + data.validation.paths,
                                                train_labels, out_of_fold))
    return _Evaluation(report, chosen, never_empty, test, test_probs, tuple(held_out), result,
                       calibrated)


def _fit_calibration(method, name, labels, probs, num_classes):
    """The calibration of `method` fitted to held-out `probs`; none where there are none."""
    if probs is None or not len(labels):
        if method != "none":
            logger.warning("No %s predictions to calibrate on: probabilities left as they are",
                           name)
        return calibration_lib.Calibration.identity(num_classes)
    return calibration_lib.fit(labels, probs, method)


def _calibrated(head, calibrated):
    """The trained head with `calibrated` folded into its weights and biases."""
    weights, biases = calibrated.fold(head.weights, head.biases)
    return dataclasses.replace(head, weights=weights, biases=biases)


def _calibration_effect(labels, raw, calibrated, never_empty):
    """metrics.json's record of what calibration did on the test part: ECE before and
    after with intervals, mAP before and after, and how many label sets changed (none
    but by float rounding, or where the top-margin rule compares classes' margins)."""
    (raw_probs, raw_thresholds), (probs, thresholds) = raw, calibrated
    changed = (thresholds_lib.apply_thresholds(raw_probs, raw_thresholds, never_empty)
               != thresholds_lib.apply_thresholds(probs, thresholds, never_empty)).any(axis=1)
    effect = {}
    for when, p in (("before", raw_probs), ("after", probs)):
        effect[f"test_ece_{when}"] = calibration_lib.expected_calibration_error(labels, p)[0]
        effect[f"test_map_{when}"] = metrics.mean_average_precision(labels, p)
    effect["test_ece_difference"] = bootstrap.paired_differences(
        labels, (raw_probs, raw_thresholds, never_empty),
        (probs, thresholds, never_empty))["expected_calibration_error"]
    effect["test_label_sets_changed"] = int(changed.sum())
    return effect


def _without_leaks(test, test_x, test_probs, leaked, chosen, never_empty, report):
    """The test part and its features without the `leaked` images; the measures with
    them (from `test_probs`) go into `report` as "test_with_near_duplicates", and the log
    says how much leaving them out moves the measures."""
    keep = [i for i, path in enumerate(test.paths) if path not in leaked]
    if len(keep) == len(test):
        return test, test_x
    with_leaks = metrics.evaluate(test.labels, test_probs, chosen, never_empty)
    report["test_with_near_duplicates"] = with_leaks
    test, test_x, test_probs = test.subset(keep), test_x[keep], test_probs[keep]
    if len(test):
        without = metrics.evaluate(test.labels, test_probs, chosen, never_empty)
        logger.info("--dedupe: %d test images with a near-duplicate in training left out of "
                    "the measures: test mAP %.4f -> %.4f, exact match %.4f -> %.4f",
                    with_leaks["num_instances"] - len(test),
                    with_leaks["mean_average_precision"], without["mean_average_precision"],
                    with_leaks["exact_match"], without["exact_match"])
    return test, test_x


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


def _gain(phase_1, phase_2):
    """Phase 2's test measures less phase 1's, each with the 95 % interval of the
    difference on the same resamples of the test images; logged."""
    before, after = phase_1.report, phase_2.report
    if "validation" in before and "validation" in after:
        logger.info("Fine-tuning moved validation mAP from %.4f to %.4f",
                    before["validation"]["mean_average_precision"],
                    after["validation"]["mean_average_precision"])
    gain = bootstrap.paired_differences(
        phase_2.test.labels, (phase_1.test_probs, phase_1.thresholds, phase_1.never_empty),
        (phase_2.test_probs, phase_2.thresholds, phase_2.never_empty))
    for key, name in (("mean_average_precision", "mAP"), ("label_accuracy", "label accuracy"),
                      ("exact_match", "exact match")):
        interval = gain[key]["interval"] or (math.nan, math.nan)
        logger.info("Fine-tuning moved test %s from %.4f to %.4f: %+.4f [%+.4f, %+.4f]", name,
                    before["test"][key], after["test"][key], gain[key]["difference"], *interval)
    return gain


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
    return stage.write_outputs(options, _trained_model(options, module, result), results,
                               tflite_required="tflite_output_file" in dict(changed),
                               clock=clock)


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


def _write_model_card(options, module, data, report, issues, changed, found, written):
    """The run's model card (export.model_card), beside its other outputs: `written`
    (RunSet.paths()) and the report page and SavedModel folder, which are not in it yet."""
    parts = (data.train, data.validation, data.test)
    outputs = [os.path.basename(path) for path in (*written.values(), options.report_page,
                                                   options.saved_model_dir) if path]
    card = model_card.Card(
        options.image_dir, tuple(data.class_names),
        {part.name: [int(n) for n in np.asarray(part.labels).sum(axis=0)] if len(part)
         else [0] * data.num_classes for part in parts},
        {part.name: len(part) for part in parts},
        tuple(model_card.module_entry(m.handle, m.path) for m in module.members),
        tuple(changed), report, tuple(issues), tuple(outputs), found.counts())
    model_card.write(options.model_card, card)
    logger.info("Wrote %s", options.model_card)


def _write_label_issues(path, evaluation, class_names):
    """The label issues file from the held-out predictions; its issues, worst first."""
    issues = label_issues.write_label_issues(path, evaluation.held_out, class_names)
    logger.info("Wrote %s: %d images whose labels look wrong", path, len(issues))
    return issues


def _write_near_duplicates(path, found):
    """The near-duplicates file, and one log line of what it holds."""
    near_duplicates.write_near_duplicates(path, found)
    counts = found.counts()
    logger.info("Wrote %s: %d test images with a near-duplicate in training, %d pairs within "
                "training, %d pairs labelled differently (label issues too)", path,
                counts["leaked_test"], counts["within_training"], counts["different_labels"])


def _write_review_page(options, data, issues, found, evaluation):
    """Write the review page (report.review_page); return how many cards it holds, or None
    where it was not written (left out, or failed: one warning, never a failed run)."""
    if not options.review_page:
        return None
    try:
        from multilabel.report import review_page  # as the report page: see below

        parts = (data.train, data.validation, data.test)
        label_file = review_page.label_file_of(options.image_dir, parts)
        cards = review_page.cards(label_file, issues, found, evaluation.held_out)
        review_page.write_review_page(options.review_page, data.class_names, label_file,
                                      cards)
    except Exception as e:  # any error at all: the page only shows outputs already written
        logger.warning("Could not write the review page %s (%s: %s); the other outputs are "
                       "written", options.review_page, type(e).__name__, e)
        return None
    logger.info("Wrote %s: %d images or pairs to review", options.review_page, len(cards))
    return len(cards)


def _explained(options, module, evaluation):
    """The report's class activation maps of the worst wrong test images and a few right
    ones, from the exported graph (labelling.class_activation), or why there are none."""
    from multilabel.data.images import load_image
    from multilabel.labelling import class_activation, frozen_graph
    from multilabel.report import heatmaps, page

    test = evaluation.test
    try:
        explainer = class_activation.Explainer(frozen_graph.read_graph_def(options.output_graph),
                                               options.final_tensor_name)
    except class_activation.NotExplainable as e:
        return heatmaps.Explained(reason=e.message)
    wrong, right, _ = page.pick_examples(test.labels, evaluation.test_probs, evaluation.thresholds,
                                         heatmaps.SHOWN_WRONG, heatmaps.SHOWN_RIGHT,
                                         evaluation.never_empty)
    shown = wrong + right
    images = np.stack([load_image(test.paths[i], module.height, module.width) for i in shown]
                      or [np.zeros((module.height, module.width, 3), np.float32)])[:len(shown)]
    probs, maps = explainer.explain(images)
    members = (tuple(m.handle for m in module.members)
               if len(module.members) == explainer.member_count
               else tuple(f"member {k + 1}" for k in range(explainer.member_count)))
    return heatmaps.Explained(tuple(test.paths[i] for i in shown), test.labels[shown], probs,
                              np.asarray(evaluation.thresholds), evaluation.never_empty, images,
                              maps, members, len(wrong))


def _write_report_page(options, changed, module, data, result, report, evaluation,
                       stage_seconds, issues, found, reviewed):
    """Write the HTML report page last; a failure is one warning, never a failed run.
    Whether it was written."""
    path = options.report_page
    try:
        # Imported here, not at the top: a broken plotting install must not stop training.
        from multilabel.report import data_sections, page

        run_facts = page.RunFacts(
            module=",".join(options.tfhub_module),
            module_details=f"{module.path}, {module.height} x {module.width} images -> "
                           f"{module.dim} features, bottlenecks by the {module.engine.name} "
                           "engine",
            sizes={part.name: len(part) for part in (data.train, data.validation, data.test)},
            class_names=data.class_names, changed_flags=changed,
            stage_seconds=dict(stage_seconds), history=result.history,
            model_card=os.path.relpath(options.model_card, os.path.dirname(
                os.path.abspath(path))).replace(os.sep, "/") if options.model_card else "")
        page.write_page(
            path, run_facts, report,
            page.TestImages(evaluation.test.paths, evaluation.test.labels,
                            evaluation.test_probs, np.asarray(evaluation.thresholds),
                            evaluation.never_empty),
            options.report_wrong_images, issues=[
                dataclasses.replace(i, probs=evaluation.calibration.probs(i.probs[None])[0])
                for i in issues],  # shown against the calibrated thresholds
            explained=_explained(options, module, evaluation), sections=[
                data_sections.near_duplicates_section(
                    found, os.path.basename(options.near_duplicates)),
                *([data_sections.review_link_section(options.review_page, path, reviewed)]
                  if reviewed is not None else [])])
    except Exception as e:  # any error at all: the page only shows outputs already written
        logger.warning("Could not write the report page %s (%s: %s); the other outputs are "
                       "written", path, type(e).__name__, e)
        return False
    logger.info("Wrote %s", path)
    return True
