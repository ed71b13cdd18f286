"""Which calibration is on by default: test ECE and mAP with and without, on several splits.

For each --seeds split this runs retrain.py (its own `main`, with the given flags and
`--calibration none`), keeps the held-out predictions the run would fit a calibration on
(out-of-fold predictions of the training images) and the test part's raw probabilities
and thresholds, then fits each calibration (evaluation.calibration) on the former and
measures it on the latter: pooled ECE with its 95 % interval, the paired interval of the
change, mAP, and how many test label sets the moved thresholds change.

    python -m bench.experiments.calibration --seeds 1,2,3

Run as a module from the repository root, which puts the root, and so retrain.py, on the
import path. The table goes into docs/report.md#calibration.
"""

import argparse
import logging
import os
import tempfile

import numpy as np

import retrain
from bench.experiments.choose_modules import split_folder
from bench.retrain_outputs import output_flags
from multilabel import retraining
from multilabel.evaluation import bootstrap, calibration, metrics
from multilabel.evaluation.thresholds import apply_thresholds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image_dir", default="DATASET")
    p.add_argument("--class_names", default="desert,mountains,sea,sunset,trees")
    p.add_argument("--seeds", default="1,2,3", help="split seeds (default: %(default)s)")
    p.add_argument("--bottleneck_dir", default="MODEL_DETAILS/bottlenecks")
    p.add_argument("--flags", default="", help="more retrain.py flags (default: none)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in seeds:
            data_dir = split_folder(args.image_dir, args.class_names, seed, scratch)
            fit_on, test = _run(data_dir, os.path.join(scratch, f"out-{seed}"), args)
            for method in ("none", "temperature", "platt"):
                rows.append((seed, method, _measure(method, fit_on, test)))
                print(seed, method, rows[-1][2], flush=True)
    _print_table(rows)


def _run(data_dir, out, args):
    """Run retrain.py without calibration; return (what a calibration is fitted on, the
    test part's labels, raw probabilities, thresholds and label rule)."""
    seen = {}
    fit, evaluate = retraining._fit_calibration, retraining._evaluate

    def recorded_fit(method, name, labels, probs, num_classes):
        seen["fit_on"] = (labels, probs)
        return fit(method, name, labels, probs, num_classes)

    def recorded_evaluate(*positional, **keywords):
        evaluation = evaluate(*positional, **keywords)
        seen["test"] = (evaluation.test.labels, evaluation.test_probs,
                        np.asarray(evaluation.thresholds), evaluation.never_empty)
        return evaluation

    retraining._fit_calibration, retraining._evaluate = recorded_fit, recorded_evaluate
    try:
        status = retrain.main(["--image_dir", data_dir, "--bottleneck_dir", args.bottleneck_dir,
                               "--logging_verbosity", "WARN", "--calibration", "none",
                               "--report_page", "", *args.flags.split(), *output_flags(out)[:-2]])
    finally:
        retraining._fit_calibration, retraining._evaluate = fit, evaluate
    if status:
        raise SystemExit("retrain.py failed")
    return seen["fit_on"], seen["test"]


def _measure(method, fit_on, test):
    labels, probs, thresholds, never_empty = test
    fitted = calibration.fit(*fit_on, method)
    moved, moved_thresholds = fitted.probs(probs), fitted.thresholds(thresholds)
    change = bootstrap.paired_differences(labels, (probs, thresholds, never_empty),
                                          (moved, moved_thresholds, never_empty))
    ece = bootstrap.intervals(labels, moved, moved_thresholds, never_empty)
    changed = (apply_thresholds(probs, thresholds, never_empty)
               != apply_thresholds(moved, moved_thresholds, never_empty)).any(axis=1)
    return {"ece": calibration.expected_calibration_error(labels, moved)[0],
            "ece_interval": ece["expected_calibration_error"],
            "ece_change": change["expected_calibration_error"],
            "map": metrics.mean_average_precision(labels, moved),
            "label_accuracy": metrics.label_accuracy(labels, moved, moved_thresholds,
                                                     never_empty),
            "lrap": metrics.label_ranking_average_precision(labels, moved),
            "label_sets_changed": int(changed.sum())}


def _print_table(rows):
    print("\n| split seed | calibration | test ECE (95 % interval) | change in ECE (paired "
          "95 % interval) | mAP | label accuracy | example-based AP | test label sets "
          "changed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for seed, method, m in rows:
        low, high = m["ece_interval"]
        change = m["ece_change"]
        print(f"| {seed} | {method} | {m['ece']:.4f} ({low:.4f}-{high:.4f}) | "
              f"{change['difference']:+.4f} ({change['interval'][0]:+.4f} to "
              f"{change['interval'][1]:+.4f}) | {m['map']:.4f} | {m['label_accuracy']:.4f} | "
              f"{m['lrap']:.4f} | {m['label_sets_changed']} |")


if __name__ == "__main__":
    main()
