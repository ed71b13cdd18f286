"""Two runs on the same test images, compared on the same resamples: is B's gain real?

Each run's measures carry 95 % intervals (metrics.json), but two runs measured on the
same 400 test images share their hard images, so the interval of the *difference* is
narrower than either run's own. This reads both run folders' test predictions
(`test_predictions.jsonl`), thresholds and label rule, the true labels from the data
set's test list, and prints each measure of A and B and B - A with its paired 95 %
interval (evaluation.bootstrap.paired_differences). The bench tables that compare
recipes on one split use it to say which differences the test part can tell apart.

    python -m bench.compare_runs RUN_A RUN_B [--image_dir DATASET]
"""

import argparse
import json
import os
import sys

import numpy as np

from multilabel.data import listfile
from multilabel.evaluation import bootstrap
from multilabel.evaluation.thresholds import read_rule, read_thresholds

MEASURES = ("label_accuracy", "exact_match", "micro_f1", "macro_f1", "mean_average_precision",
            "label_ranking_average_precision", "one_error", "ranking_loss",
            "expected_calibration_error")


def read_run(folder, truth):
    """`(labels, (probs, thresholds, never_empty))` of a run folder's test predictions,
    the labels from `truth` ({absolute image path: flags})."""
    with open(os.path.join(folder, "test_predictions.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    keys = [os.path.abspath(row["image"]) for row in rows]
    missing = [k for k in keys if k not in truth]
    if missing:
        raise SystemExit(f"{folder}: {missing[0]} is not in the data set's test list")
    order = np.argsort(keys)
    probs = np.array([rows[i]["probabilities"] for i in order])
    thresholds_path = os.path.join(folder, "output_thresholds.txt")
    model = (probs, read_thresholds(thresholds_path, probs.shape[1]), read_rule(thresholds_path))
    return [keys[i] for i in order], np.array([truth[keys[i]] for i in order]), model


def compare(first, second, image_dir):
    """{measure: (A, B, {"difference", "interval"})} of two run folders."""
    entries = listfile.read_list_file(os.path.join(image_dir, "dataset_test.lst"))
    truth = {os.path.abspath(listfile.image_path(image_dir, e)): e.flags for e in entries}
    images_a, labels, model_a = read_run(first, truth)
    images_b, _, model_b = read_run(second, truth)
    if images_a != images_b:
        raise SystemExit("the two runs were tested on different images: no paired comparison")
    a, b = (bootstrap.resampled_measures(labels, *model) for model in (model_a, model_b))
    paired = bootstrap.paired_differences(labels, model_a, model_b)
    return {name: (float(a[name][0]), float(b[name][0]), paired[name]) for name in MEASURES}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("first")
    p.add_argument("second")
    p.add_argument("--image_dir", default="DATASET",
                   help="the data set both runs were tested on (default: %(default)s)")
    args = p.parse_args(argv)
    print(f"| measure | A: {args.first} | B: {args.second} | B - A | paired 95 % interval |")
    print("| --- | --- | --- | --- | --- |")
    for name, (a, b, change) in compare(args.first, args.second, args.image_dir).items():
        low, high = change["interval"]
        print(f"| {name} | {a:.4f} | {b:.4f} | {change['difference']:+.4f} | "
              f"{low:+.4f} to {high:+.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
